// SPDX-License-Identifier: Apache-2.0

package upstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/proto/prototest"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/upstream"
)

var (
	buildOnce sync.Once
	serverBin string
	buildErr  error
)

// dcServer builds cmd/dc_server once and starts it on a unix socket in a
// temporary directory; the test kills it at the end.
func dcServer(t *testing.T, sock string, args ...string) *exec.Cmd {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "upstream-bin")
		if err != nil {
			buildErr = err
			return
		}
		serverBin = filepath.Join(dir, "dc_server")
		out, err := exec.Command("go", "build", "-o", serverBin, "../../cmd/dc_server").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building dc_server: %v", buildErr)
	}
	cmd := exec.Command(serverBin, append([]string{"-listen", "UNIX:" + sock}, args...)...)
	var out bytes.Buffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	eventually(t, 10*time.Second, "dc_server to listen", func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return cmd
}

func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func unixServer(name, path string) upstream.Server {
	return upstream.Server{Name: name, Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
}

// testLog collects what the upstream logs.
type testLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *testLog) Printf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, strings.TrimSpace(fmt.Sprintf(format, args...)))
	l.mu.Unlock()
}

func open(t *testing.T, o upstream.Options) *upstream.Upstream {
	t.Helper()
	u, err := upstream.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// waitUp waits until a HAVE is answered by a server (not ErrNoServer).
func waitUp(t *testing.T, u *upstream.Upstream) {
	t.Helper()
	eventually(t, 10*time.Second, "a server in use", func() bool {
		err := u.Have(context.Background(), []byte("x"))
		return err == nil || errors.Is(err, store.ErrNotFound)
	})
}

// startPair starts a real dc_server and an upstream to it.
func startPair(t *testing.T, o upstream.Options, serverArgs ...string) (*upstream.Upstream, *exec.Cmd, string) {
	sock := filepath.Join(t.TempDir(), "s")
	srv := dcServer(t, sock, serverArgs...)
	o.Servers = []upstream.Server{unixServer("s", sock)}
	if o.Log == nil {
		o.Log = &testLog{}
	}
	u := open(t, o)
	waitUp(t, u)
	return u, srv, sock
}

// Every operation's answers, through the upstream to a real dc_server,
// map onto the store's errors. (storetest.Run does not apply as a whole:
// the protocol carries at most 32768-8-len(id) bytes of data, and a
// session of the one byte 0x01 reads as a miss.)
func TestOperationsViaDCServer(t *testing.T) {
	u, _, _ := startPair(t, upstream.Options{Timeout: 5 * time.Second}, "-minlifetime", "0")
	bg := context.Background()
	id := []byte("session-1")
	data := bytes.Repeat([]byte("0123456789"), 3000)
	if err := u.Add(bg, id, data, time.Hour); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := u.Add(bg, id, []byte("other"), time.Hour); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("second Add: %v, want ErrDuplicate", err)
	}
	got, err := u.Get(bg, id, []byte("prefix"))
	if err != nil || !bytes.Equal(got, append([]byte("prefix"), data...)) {
		t.Fatalf("Get: %d bytes, %v", len(got), err)
	}
	if err := u.Have(bg, id); err != nil {
		t.Fatalf("Have: %v", err)
	}
	if err := u.Remove(bg, id); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	for what, err := range map[string]error{
		"Remove again":         u.Remove(bg, id),
		"Have after":           u.Have(bg, id),
		"Have of a 65-byte id": u.Have(bg, make([]byte, 65)),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", what, err)
		}
	}
	if _, err := u.Get(bg, id, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Remove: %v", err)
	}
	if err := u.Add(bg, []byte("big"), make([]byte, proto.MaxPayload-8-3+1), time.Hour); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Add over the payload limit: %v, want ErrInvalid", err)
	}
	if err := u.Add(bg, []byte("short"), []byte("d"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a 50 ms session to expire", func() bool {
		return errors.Is(u.Have(bg, []byte("short")), store.ErrNotFound)
	})
}

func TestNoServer(t *testing.T) {
	u := open(t, upstream.Options{Servers: []upstream.Server{unixServer("none", filepath.Join(t.TempDir(), "none"))}, Log: &testLog{}})
	start := time.Now()
	_, err := u.Get(context.Background(), []byte("id"), nil)
	if !errors.Is(err, upstream.ErrNoServer) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get with no server: %v", err)
	}
	if a := upstream.Answer(proto.OpGet, err); len(a) != 0 {
		t.Errorf("Answer(ErrNoServer) = %x, want empty", a)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	if _, err := u.Take(context.Background(), []byte("id"), nil); !errors.Is(err, upstream.ErrNoServer) {
		t.Errorf("Take with no server: %v", err)
	}
}

// slowServer answers every request with 0x01 after delay, in order.
func slowServer(t *testing.T, delay time.Duration) string {
	return prototest.Serve(t, filepath.Join(t.TempDir(), "slow"), func(m *proto.Message) ([]byte, bool) {
		time.Sleep(delay) // the server's latency under test
		return prototest.Miss(m)
	}).Path
}

// A server that is slow (every answer 150 ms) is not taken for stalled
// after the timeout has seen its latency, although the floor is 50 ms.
func TestTimeoutAdaptsToLatency(t *testing.T) {
	log := &testLog{}
	u := open(t, upstream.Options{Servers: []upstream.Server{unixServer("slow", slowServer(t, 150*time.Millisecond))},
		Timeout: 50 * time.Millisecond, Log: log})
	// The first requests trip (nothing seen yet) until the probe's 150 ms
	// answer has been seen.
	eventually(t, 10*time.Second, "an answer from the slow server", func() bool {
		return errors.Is(u.Have(context.Background(), []byte("x")), store.ErrNotFound)
	})
	// Only the warnings count: the probe's "answers again" is logged
	// after the link is up again, and can come after the answer above.
	stalls := func() (n []string) {
		log.mu.Lock()
		defer log.mu.Unlock()
		for _, l := range log.lines {
			if strings.Contains(l, "did not answer within") {
				n = append(n, l)
			}
		}
		return n
	}
	trips := len(stalls())
	for i := 0; i < 10; i++ {
		if err := u.Have(context.Background(), []byte("x")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("request %d to the slow server: %v", i, err)
		}
	}
	if s := stalls(); len(s) != trips {
		t.Errorf("the slow server was taken for stalled again: %q", s[trips:])
	}
}
