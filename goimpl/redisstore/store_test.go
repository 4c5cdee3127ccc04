// SPDX-License-Identifier: Apache-2.0

package redisstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/redisstore/redistest"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/store/storetest"
)

var bg = context.Background()

// stall is the longest this test process was kept from running (see
// redistest.StallWatch); latency bounds allow for it.
var stall func() time.Duration

func TestMain(m *testing.M) {
	var stop func()
	stall, stop = redistest.StallWatch()
	code := m.Run()
	stop()
	os.Exit(code)
}

// prefixes gives every store of a test binary its own key space.
var prefixes atomic.Int64

func open(t *testing.T, addr string, o Options) *Store {
	t.Helper()
	o.Addr = addr
	if o.Prefix == "" {
		o.Prefix = fmt.Sprintf("t%d:", prefixes.Add(1))
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second // conformance, not deadlines: the machine may be busy
	}
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open(%s): %v", addr, err)
	}
	return s
}

func TestConformanceStandalone(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, "redis://"+srv.Addr(), Options{}) })
}

func TestPrefixAndDB(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	a := open(t, "redis://"+srv.Addr()+"/2", Options{Prefix: "ours:"})
	defer a.Close()
	if err := a.Add(bg, []byte("id\x00\xff"), []byte("data"), time.Hour); err != nil {
		t.Fatal(err)
	}
	// The key is the prefix and the id's bytes, in database 2, with a
	// millisecond expiry.
	if r, err := srv.Do("SELECT", "2"); err != nil || r != "OK" {
		t.Fatalf("SELECT: %q %v", r, err)
	}
	got, err := redistest.Cmd(srv.Addr(), "KEYS", "*")
	if err != nil || got != "" {
		t.Fatalf("database 0 holds %q (%v), want nothing", got, err)
	}
	// A fresh connection is in database 0; look through a store on db 2
	// with no prefix instead.
	raw := open(t, "redis://"+srv.Addr()+"/2", Options{Prefix: "-"})
	defer raw.Close()
	if d, err := raw.Get(bg, []byte("ours:id\x00\xff"), nil); err != nil || string(d) != "data" {
		t.Fatalf("raw Get of the prefixed key = %q, %v", d, err)
	}
	other := open(t, "redis://"+srv.Addr()+"/2", Options{Prefix: "theirs:"})
	defer other.Close()
	if err := other.Have(bg, []byte("id\x00\xff")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Have under another prefix: %v, want ErrNotFound", err)
	}
}

// TestTTLZero: a zero lifetime stores nothing but still meets a live
// duplicate, as the in-memory cache does.
func TestTTLZero(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	s := open(t, "redis://"+srv.Addr(), Options{})
	defer s.Close()
	k := []byte("zero")
	if err := s.Add(bg, k, []byte("d"), 0); err != nil {
		t.Fatalf("Add with ttl 0: %v", err)
	}
	if err := s.Have(bg, k); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Have after a ttl-0 add: %v, want ErrNotFound", err)
	}
	if err := s.Add(bg, k, []byte("live"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(bg, k, []byte("d"), 0); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("ttl-0 Add over a live entry: %v, want ErrDuplicate", err)
	}
}

// addOnce adds id through a store with a short deadline, which a busy
// machine can miss: it tries again until the entry is there.
func addOnce(t *testing.T, s *Store, id []byte) {
	t.Helper()
	redistest.WaitFor(t, 10*time.Second, "the first add", func() error {
		if err := s.Add(bg, id, []byte("d"), time.Hour); err != nil && !errors.Is(err, store.ErrDuplicate) {
			return err
		}
		return nil
	})
}

// unavailable checks that err wraps ErrUnavailable and came within limit.
func unavailable(t *testing.T, what string, err error, took, limit time.Duration) {
	t.Helper()
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("%s: %v, want ErrUnavailable", what, err)
	}
	if took > limit+stall() {
		t.Errorf("%s took %v, over %v (+ %v the process stalled)", what, took, limit, stall())
	}
}

// everyOp runs each operation once and reports each result and duration.
func everyOp(s *Store, id []byte, f func(op string, err error, took time.Duration)) {
	ops := []struct {
		name string
		run  func() error
	}{
		{"Add", func() error { return s.Add(bg, id, []byte("d"), time.Hour) }},
		{"Get", func() error { _, err := s.Get(bg, id, nil); return err }},
		{"Have", func() error { return s.Have(bg, id) }},
		{"Remove", func() error { return s.Remove(bg, id) }},
		{"Take", func() error { _, err := s.Take(bg, id, nil); return err }},
	}
	for _, op := range ops {
		start := time.Now()
		err := op.run()
		f(op.name, err, time.Since(start))
	}
}

// TestDeadlineStalledServer: a server that holds the connection and
// answers nothing costs each operation its deadline, no more, and the
// store works again when the server does.
func TestDeadlineStalledServer(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	const timeout = 50 * time.Millisecond
	s := open(t, "redis://"+srv.Addr(), Options{Timeout: timeout})
	defer s.Close()
	id := []byte("stall")
	addOnce(t, s, id)
	srv.Stop()
	everyOp(s, id, func(op string, err error, took time.Duration) {
		unavailable(t, op+" on a stopped server", err, took, timeout+100*time.Millisecond)
		// The first waits for its deadline; later ones may fail sooner,
		// on the connection the client dropped after a timeout.
		if op == "Add" && took < timeout-5*time.Millisecond {
			t.Errorf("%s returned after %v, before the %v deadline: not a timeout (%v)", op, took, timeout, err)
		}
	})
	// A caller's earlier deadline wins.
	ctx, cancel := context.WithTimeout(bg, 5*time.Millisecond)
	start := time.Now()
	_, err := s.Get(ctx, id, nil)
	cancel()
	unavailable(t, "Get with a 5 ms context", err, time.Since(start), 5*time.Millisecond+100*time.Millisecond)
	srv.Cont()
	// A fresh session: the operations above were written to the stopped
	// server's socket, and it may still carry out the Remove and the Take
	// of id when it resumes.
	again := []byte("after the stall")
	redistest.WaitFor(t, 10*time.Second, "the store answers again", func() error {
		if err := s.Add(bg, again, []byte("d"), time.Hour); err != nil && !errors.Is(err, store.ErrDuplicate) {
			return err
		}
		_, err := s.Get(bg, again, nil)
		return err
	})
}

// TestReconnect: a server killed and started again (empty) is used again
// without a new Store; while it is down each operation fails at once.
func TestReconnect(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	const timeout = 50 * time.Millisecond
	s := open(t, "redis://"+srv.Addr(), Options{Timeout: timeout})
	defer s.Close()
	id := []byte("reconnect")
	addOnce(t, s, id)
	srv.Kill()
	everyOp(s, id, func(op string, err error, took time.Duration) {
		unavailable(t, op+" on a dead server", err, took, timeout+100*time.Millisecond)
	})
	srv.Restart(t)
	// An add that missed its deadline may still have been stored: a
	// duplicate is Redis answering too.
	redistest.WaitFor(t, 10*time.Second, "adds work again", func() error {
		if err := s.Add(bg, id, []byte("again"), time.Hour); !errors.Is(err, store.ErrDuplicate) {
			return err
		}
		return nil
	})
	// The Get has the same 50 ms deadline, which a loaded machine can miss
	// (at load 25, 1 run in 8: "context deadline exceeded"): a miss of
	// the deadline is asked again, any other answer is judged.
	redistest.WaitFor(t, 10*time.Second, "the session read back", func() error {
		d, err := s.Get(bg, id, nil)
		if errors.Is(err, store.ErrUnavailable) {
			return err
		}
		if err != nil || string(d) != "again" {
			t.Fatalf("Get after the restart = %q, %v", d, err)
		}
		return nil
	})
}

// TestOpenUnreachable: Open with Redis down returns a Store that fails
// fast and connects once Redis is there.
func TestOpenUnreachable(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	srv.Kill()
	var logged atomic.Int32
	s := open(t, "redis://"+srv.Addr(), Options{Timeout: 50 * time.Millisecond,
		Logf: func(string, ...any) { logged.Add(1) }})
	defer s.Close()
	if logged.Load() == 0 {
		t.Error("the failed first connection was not logged")
	}
	everyOp(s, []byte("x"), func(op string, err error, took time.Duration) {
		unavailable(t, op+" before the first connection", err, took, 100*time.Millisecond)
	})
	srv.Restart(t)
	redistest.WaitFor(t, 10*time.Second, "the store connects", func() error {
		if err := s.Add(bg, []byte("x"), []byte("d"), time.Hour); !errors.Is(err, store.ErrDuplicate) {
			return err
		}
		return nil
	})
}

func TestPassword(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t, "--requirepass", "default-secret", "--user", "alice", "on", ">alice-secret", "~dc:*", "+@all")
	if _, err := srv.Do("PING"); err == nil {
		t.Fatal("PING without AUTH worked: requirepass not in force")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("default-secret\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw, err := Password(file, PasswordEnv)
	if err != nil || pw != "default-secret" {
		t.Fatalf("Password(file) = %q, %v", pw, err)
	}
	t.Setenv(PasswordEnv, "from-env")
	if pw, _ := Password("", PasswordEnv); pw != "from-env" {
		t.Fatalf("Password from %s = %q", PasswordEnv, pw)
	}
	if _, err := Password(filepath.Join(dir, "missing"), PasswordEnv); err == nil {
		t.Fatal("Password of a missing file: no error")
	}
	good := open(t, "redis://"+srv.Addr(), Options{Password: "default-secret"})
	defer good.Close()
	if err := good.Add(bg, []byte("k"), []byte("d"), time.Hour); err != nil {
		t.Fatalf("Add with the password: %v", err)
	}
	bad := open(t, "redis://"+srv.Addr(), Options{Password: "wrong", Timeout: 100 * time.Millisecond})
	defer bad.Close()
	if err := bad.Have(bg, []byte("k")); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Have with a wrong password: %v, want ErrUnavailable", err)
	}
	// An ACL user from the address, limited to keys under dc:.
	alice := open(t, "redis://alice@"+srv.Addr(), Options{Password: "alice-secret", Prefix: "dc:"})
	defer alice.Close()
	if err := alice.Add(bg, []byte("k"), []byte("d"), time.Hour); err != nil {
		t.Fatalf("Add as alice: %v", err)
	}
	outside := open(t, "redis://alice@"+srv.Addr(), Options{Password: "alice-secret", Prefix: "other:"})
	defer outside.Close()
	if err := outside.Add(bg, []byte("k"), []byte("d"), time.Hour); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Add as alice outside her keys: %v, want ErrUnavailable", err)
	}
}
