// SPDX-License-Identifier: Apache-2.0

package client

import (
	"bytes"
	"context"
	"errors"
	"github.com/distcache-go/distcache/goimpl/client/internal/fake"
	"path/filepath"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/proto"
)

var networks = []string{"unix", "tcp"}

// generous bounds for tests that expect success on a loaded machine
var testOptions = &Options{ConnectTimeout: 20 * time.Second, IOTimeout: 20 * time.Second}

func TestClientAPI(t *testing.T) {
	for _, nw := range networks {
		t.Run(nw, func(t *testing.T) {
			s := fake.Start(t, nw, "", nil)
			cl, err := Dial(t.Context(), s.Target, testOptions)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx := t.Context()
			id, data := []byte("client-id"), []byte("client-session-data")

			if _, err := cl.Get(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get before Add: %v, want ErrNotFound", err)
			}
			if ok, err := cl.Has(ctx, id); ok || err != nil {
				t.Fatalf("Has before Add = %v, %v", ok, err)
			}
			if err := cl.Remove(ctx, id); err != ErrNotFound {
				t.Fatalf("Remove before Add: %v, want ErrNotFound", err)
			}
			if err := cl.Add(ctx, id, data, 90*time.Second); err != nil {
				t.Fatal(err)
			}
			if got := s.LastTimeout.Load(); got != 90000 {
				t.Fatalf("lifetime went out as %d ms, want 90000", got)
			}
			var re *ResultError
			if err := cl.Add(ctx, id, data, time.Minute); !errors.As(err, &re) || re.Code != proto.AddErrMatching {
				t.Fatalf("duplicate Add: %v, want ResultError 0x65", err)
			}
			got, err := cl.Get(ctx, id)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Get = %q, %v", got, err)
			}
			if ok, err := cl.Has(ctx, id); !ok || err != nil {
				t.Fatalf("Has = %v, %v", ok, err)
			}
			if err := cl.Remove(ctx, id); err != nil {
				t.Fatal(err)
			}
			if err := cl.Add(ctx, []byte("b"), data, 0); err != nil || s.LastTimeout.Load() != 300000 {
				t.Fatalf("Add with lifetime 0: %v, sent %d", err, s.LastTimeout.Load())
			}
			if err := cl.Add(ctx, []byte("c"), data, 8*24*time.Hour); !errors.As(err, &re) || re.Code != proto.AddErrTimeoutRange {
				t.Fatalf("Add for 8 days: %v, want ResultError 0x66", err)
			}
			if err := cl.Add(ctx, nil, data, 0); err != ErrInvalid {
				t.Fatalf("Add with empty id: %v", err)
			}
			if _, err := cl.Get(ctx, nil); err != ErrInvalid {
				t.Fatalf("Get with empty id: %v", err)
			}
			if got := s.Accepts.Load(); got != 1 {
				t.Fatalf("client used %d connections, want 1", got)
			}
			cl.Close()
			if _, err := cl.Get(ctx, id); err != ErrClosed {
				t.Fatalf("Get after Close: %v, want ErrClosed", err)
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	dir := fake.ShortTempDir(t)
	if _, err := Dial(t.Context(), "UNIX:"+filepath.Join(dir, "none"), nil); err == nil {
		t.Fatal("Dial to a missing socket succeeded")
	} else if oe := (*OpError)(nil); !errors.As(err, &oe) || oe.Op != "dial" {
		t.Fatalf("Dial error %v, want *OpError dial", err)
	}
	if _, err := Dial(t.Context(), "IP:9001", nil); !errors.Is(err, nal.ErrAddress) {
		t.Fatalf("Dial to a listen-only address: %v, want nal.ErrAddress", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Dial(ctx, "IP:127.0.0.1:1", nil); err == nil {
		t.Fatal("Dial with a cancelled context succeeded")
	}

	s := fake.Start(t, "unix", "", nil)
	cl, err := Dial(t.Context(), s.Target, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, tt := range []struct {
		mode fake.Mode
		want error
	}{
		{fake.ModeEmpty, ErrUnavailable},
		{fake.ModeDisconn, ErrUnavailable},
		{fake.ModeWrongUID, ErrBadResponse},
	} {
		s.SetMode(tt.mode)
		if _, err := cl.Has(t.Context(), []byte("x")); !errors.Is(err, tt.want) {
			t.Errorf("mode %d: Has error %v, want %v", tt.mode, err, tt.want)
		}
	}

	// A silent server: the context's deadline ends the call, well before
	// the 20 s IOTimeout, and the client keeps working afterwards.
	s.SetMode(fake.ModeSilent)
	ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
	_, err = cl.Get(ctx, []byte("x"))
	cancel()
	if err == nil {
		t.Fatal("Get from a silent server succeeded")
	}
	// Cancellation (no deadline) also ends the call.
	ctx, cancel = context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := cl.Get(ctx, []byte("x")); done <- err }()
	fake.WaitFor(t, "the request to reach the server", func() bool { return s.Requests.Load() >= 5 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Get: %v, want context.Canceled", err)
	}
	// An already cancelled context sends nothing.
	if _, err := cl.Get(ctx, []byte("x")); err == nil {
		t.Fatal("Get with a cancelled context succeeded")
	}
	s.SetMode(fake.ModeNormal)
	if ok, err := cl.Has(t.Context(), []byte("x")); ok || err != nil {
		t.Fatalf("Has after the server woke = %v, %v", ok, err)
	}
}
