// SPDX-License-Identifier: Apache-2.0

package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/internal/waittest"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/proto/prototest"
	"github.com/distcache-go/distcache/goimpl/store"
)

// holdServer answers every request with 0x01 (a miss), except that the
// answer to a request for the id "hold" waits until release is closed;
// held receives each such request when it arrives.
func holdServer(t *testing.T) (path string, held chan struct{}, release chan struct{}) {
	held, release = make(chan struct{}, 16), make(chan struct{})
	srv := prototest.Serve(t, filepath.Join(t.TempDir(), "s"), func(m *proto.Message) ([]byte, bool) {
		if string(m.Payload) == "hold" {
			held <- struct{}{}
			<-release
		}
		return prototest.Miss(m)
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	return srv.Path, held, release
}

func openHold(t *testing.T, path string, timeout time.Duration) *Upstream {
	u, err := New(Options{
		Servers: []Server{{Name: "hold", Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}},
		Timeout: timeout, Retry: 20 * time.Millisecond, Log: nopLog{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	waittest.For(t, "the server connection", func() bool {
		return errors.Is(u.Have(context.Background(), []byte("x")), store.ErrNotFound)
	})
	return u
}

// A caller whose request finds no one reading the connection reads its
// answer itself: no goroutine hands it over.
func TestCallerReadsItsOwnAnswer(t *testing.T) {
	path, held, release := holdServer(t)
	u := openHold(t, path, 30*time.Second)
	l := u.links[0]
	errs := make(chan error, 1)
	go func() { errs <- u.Have(context.Background(), []byte("hold")) }()
	<-held
	l.mu.Lock()
	reading, byCaller := l.reading, l.readerCall != nil
	l.mu.Unlock()
	if !reading || !byCaller {
		t.Errorf("while the answer is awaited: reading %v, by the caller %v; want both", reading, byCaller)
	}
	close(release)
	if err := <-errs; !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Have: %v, want ErrNotFound", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reading || l.readerCall != nil {
		t.Errorf("after the answer: reading %v, reader call %v; want the role free", l.reading, l.readerCall != nil)
	}
}

// A reading caller whose request times out is stopped by the watchdog: it
// fails with ErrDisconnected, the server goes on probation, readLoop
// reads the late answer and drops it, and the connection serves again
// (its read deadline cleared) once the probe is answered.
func TestReadingCallerTimesOut(t *testing.T) {
	path, held, release := holdServer(t)
	u := openHold(t, path, 50*time.Millisecond)
	l := u.links[0]
	start := time.Now()
	err := u.Have(context.Background(), []byte("hold"))
	if !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Have of a held answer: %v, want ErrDisconnected", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the timeout took %v", d)
	}
	<-held
	if got := l.state.Load(); got != stateProbing {
		t.Errorf("state after the timeout: %d, want probing (%d)", got, stateProbing)
	}
	close(release) // the late answer, then the probe's
	waittest.For(t, "the server back in use", func() bool { return l.state.Load() == stateUp })
	for i := 0; i < 20; i++ {
		if err := u.Have(context.Background(), []byte("x")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Have %d after the probe: %v", i, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen != 1 || l.intr {
		t.Errorf("connection %d, interrupted %v; want the first, not interrupted", l.gen, l.intr)
	}
}

// A connection left idle is read by readLoop, so that the server's close
// is noticed without a request.
func TestIdleConnectionIsWatched(t *testing.T) {
	path, _, _ := holdServer(t)
	u := openHold(t, path, 0)
	l := u.links[0]
	waittest.For(t, "readLoop to read the idle connection", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.reading && l.readerCall == nil
	})
	l.mu.Lock()
	nc := l.nc
	l.mu.Unlock()
	nc.(interface{ CloseWrite() error }).CloseWrite()
	// The server sees the end and closes its side; readLoop sees that.
	waittest.For(t, "the connection's end noticed", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.nc != nc
	})
}

// WaitTried waits for the first connection attempt: until the dial
// returns, and no longer.
func TestWaitTried(t *testing.T) {
	path, _, _ := holdServer(t)
	release := make(chan struct{})
	u, err := New(Options{
		Servers: []Server{{Name: "slow dial", Dial: func(ctx context.Context) (net.Conn, error) {
			<-release
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}, {Name: "none", Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path+".none")
		}}},
		Timeout: time.Second, Retry: time.Minute, Log: nopLog{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	if u.WaitTried(50 * time.Millisecond) {
		t.Fatal("WaitTried returned true while a dial was still under way")
	}
	close(release)
	if !u.WaitTried(10 * time.Second) {
		t.Fatal("WaitTried returned false after every first attempt ended")
	}
	if !u.Connected() {
		t.Error("not connected after the first attempt succeeded")
	}
}

// Answers reach the callers that asked for them while the reader's role
// passes between callers and readLoop. readLoop used to give the role up
// before copying the last answer it had read, so a caller taking the role
// could read the next answer into the same buffer meanwhile: a GET then
// got another session's data (and -race saw the two goroutines).
func TestAnswersWhileTheReaderRolePasses(t *testing.T) {
	srv := prototest.Serve(t, filepath.Join(t.TempDir(), "s"), func(m *proto.Message) ([]byte, bool) {
		if m.Op != proto.OpGet {
			return prototest.Miss(m)
		}
		return append([]byte("data of "), m.Payload...), true
	})
	u := openHold(t, srv.Path, 5*time.Second)
	const callers, gets = 6, 3000
	errs := make(chan error, callers)
	for w := 0; w < callers; w++ {
		go func() {
			var dst []byte
			for i := 0; i < gets; i++ {
				id := []byte(fmt.Sprintf("id-%d-%d", w, i))
				var err error
				dst, err = u.Get(context.Background(), id, dst[:0])
				if err == nil && string(dst) != "data of "+string(id) {
					err = fmt.Errorf("GET %s answered %q", id, dst)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < callers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Poll takes the reader's role only of a connection it can poll (a plain
// socket): readLoop's read of any other (TLS) is left alone, and the
// request it waits for is answered. (Poll used to stop that read and
// leave nobody reading: the request, a feature probe at dc_client's start
// over TLS, went unanswered.)
func TestPollLeavesAnUnpollableConnectionAlone(t *testing.T) {
	path, held, release := holdServer(t)
	u, err := New(Options{
		Servers: []Server{{Name: "hold", Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", path)
			return struct{ net.Conn }{c}, err // not a plain socket to rawio
		}}},
		Retry: 20 * time.Millisecond, Log: nopLog{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	waittest.For(t, "the server connection", func() bool {
		return errors.Is(u.Have(context.Background(), []byte("x")), store.ErrNotFound)
	})
	errs := make(chan error, 1)
	go func() {
		// A caller with a deadline does not read: readLoop does.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		errs <- u.Have(ctx, []byte("hold"))
	}()
	<-held
	p := newTestPoller(t)
	u.Poll(p)
	close(release)
	select {
	case err := <-errs:
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Have: %v, want ErrNotFound", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request read by readLoop was never answered after Poll")
	}
}
