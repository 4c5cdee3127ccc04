package client

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
)

func TestClientAPI(t *testing.T) {
	for _, nw := range networks {
		t.Run(nw, func(t *testing.T) {
			s := startFake(t, nw, "", nil)
			cl, err := Dial(s.target, testOptions)
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
			if got := s.lastTimeout.Load(); got != 90000 {
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
			if err := cl.Add(ctx, []byte("b"), data, 0); err != nil || s.lastTimeout.Load() != 300000 {
				t.Fatalf("Add with lifetime 0: %v, sent %d", err, s.lastTimeout.Load())
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
			if got := s.accepts.Load(); got != 1 {
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
	dir := shortTempDir(t)
	if _, err := Dial("UNIX:"+filepath.Join(dir, "none"), nil); err == nil {
		t.Fatal("Dial to a missing socket succeeded")
	} else if oe := (*OpError)(nil); !errors.As(err, &oe) || oe.Op != "dial" {
		t.Fatalf("Dial error %v, want *OpError dial", err)
	}
	if _, err := Dial("IP:9001", nil); err == nil {
		t.Fatal("Dial to a listen-only address succeeded")
	}

	s := startFake(t, "unix", "", nil)
	cl, err := Dial(s.target, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, tt := range []struct {
		mode fakeMode
		want error
	}{
		{modeEmpty, ErrUnavailable},
		{modeDisconn, ErrUnavailable},
		{modeWrongUID, ErrBadResponse},
	} {
		s.setMode(tt.mode)
		if _, err := cl.Has(t.Context(), []byte("x")); !errors.Is(err, tt.want) {
			t.Errorf("mode %d: Has error %v, want %v", tt.mode, err, tt.want)
		}
	}

	// A silent server: the context's deadline ends the call, well before
	// the 20 s IOTimeout, and the client keeps working afterwards.
	s.setMode(modeSilent)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	_, err = cl.Get(ctx, []byte("x"))
	cancel()
	if err == nil {
		t.Fatal("Get from a silent server succeeded")
	}
	// Cancellation (no deadline) also ends the call.
	ctx, cancel = context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := cl.Get(ctx, []byte("x")); done <- err }()
	waitFor(t, "the request to reach the server", func() bool { return s.requests.Load() >= 5 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Get: %v, want context.Canceled", err)
	}
	// An already cancelled context sends nothing.
	if _, err := cl.Get(ctx, []byte("x")); err == nil {
		t.Fatal("Get with a cancelled context succeeded")
	}
	s.setMode(modeNormal)
	if ok, err := cl.Has(t.Context(), []byte("x")); ok || err != nil {
		t.Fatalf("Has after the server woke = %v, %v", ok, err)
	}
}

// A TCP connect that is never answered (the listener's accept queue is
// full, so the kernel drops SYNs) fails after ConnectTimeout, not after the
// kernel's minutes.
func TestConnectTimeout(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Skip("no socket:", err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}
	// Fill the accept queue (backlog 0 admits one, sometimes two).
	var fillers []net.Conn
	defer func() {
		for _, c := range fillers {
			c.Close()
		}
	}()
	blocked := false
	for i := 0; i < 8 && !blocked; i++ {
		c, err := net.DialTimeout("tcp4", addr.String(), time.Second)
		if err != nil {
			blocked = true
			break
		}
		fillers = append(fillers, c)
	}
	if !blocked {
		t.Skip("the kernel did not drop SYNs to a full accept queue")
	}
	target := "IP:" + addr.String()
	if c, err := New(target, FlagPersistent, &Options{ConnectTimeout: 100 * time.Millisecond}); err == nil {
		c.Close()
		t.Fatal("New connected to a black hole")
	}
	c := newCtx(t, target, 0, &Options{ConnectTimeout: 100 * time.Millisecond})
	if got := c.HasSession([]byte("x")); got != -1 {
		t.Fatalf("has = %d through a black hole, want -1", got)
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
