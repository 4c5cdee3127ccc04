// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/client/internal/fake"
	"github.com/distcache-go/distcache/goimpl/redisstore/redistest"
)

// Interoperation with this repository's dc_server and dc_client, run when
// DC_BIN names the directory of the built tools (make check sets it).

func toolPath(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("DC_BIN")
	if dir == "" {
		t.Skip("DC_BIN not set")
	}
	p, err := filepath.Abs(filepath.Join(dir, name))
	if err == nil {
		_, err = os.Stat(p)
	}
	if err != nil {
		t.Skipf("DC_BIN: %v", err)
	}
	return p
}

// startTool runs a tool until the end of the test and waits until its
// unix socket accepts connections.
func startTool(t testing.TB, sock, bin string, args ...string) *exec.Cmd {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop := func() {
		cmd.Process.Kill()
		<-done
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), out.String())
		}
	})
	fake.WaitFor(t, filepath.Base(bin)+" to listen", func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return cmd
}

func TestWithDCServer(t *testing.T) {
	bin := toolPath(t, "dc_server")
	sock := filepath.Join(fake.ShortTempDir(t), "srv")
	startTool(t, sock, bin, "-listen", "UNIX:"+sock)
	for _, fs := range flagSets {
		t.Run(fs.name, func(t *testing.T) {
			c := newCtx(t, "UNIX:"+sock, fs.flags, nil)
			id := []byte("tool-" + fs.name)
			data := bytes.Repeat([]byte("x"), 5000)
			if c.HasSession(id) != 0 || !c.AddSession(id, data, 300000) || c.AddSession(id, data, 300000) {
				t.Fatal("has/add/duplicate add")
			}
			buf := make([]byte, 100)
			if used, ok := c.GetSession(id, buf); !ok || used != len(data) {
				t.Fatalf("get = %d, %v", used, ok)
			}
			full := make([]byte, len(data))
			if used, ok := c.RegetSession(id, full); !ok || used != len(data) || !bytes.Equal(full, data) {
				t.Fatal("reget")
			}
			if c.AddSession([]byte("tool-8days"), data, 8*24*3600*1000) {
				t.Fatal("add for 8 days succeeded")
			}
			if !c.RemoveSession(id) || c.HasSession(id) != 0 {
				t.Fatal("remove")
			}
		})
	}
	hammer(t, "UNIX:"+sock, FlagPersistent)
}

// Through dc_client (upstream: the in-test server): its "no server"
// answers fail the operation without wedging the persistent context (E-9),
// and it recovers with the server.
func TestWithDCClient(t *testing.T) {
	cliBin := toolPath(t, "dc_client")
	dir := fake.ShortTempDir(t)
	srv, cli := filepath.Join(dir, "srv"), filepath.Join(dir, "cli")
	store := fake.NewStore()
	s := fake.Start(t, "unix", srv, store)
	// -reqtimeout: with the race detector on a loaded machine the fake
	// server in this process took more than the default 100 ms (17 of the
	// hammer's operations failed); this test is not about timeouts.
	startTool(t, cli, cliBin, "-listen", "UNIX:"+cli, "-server", "UNIX:"+srv, "-retry", "100", "-reqtimeout", "2000")
	c := newCtx(t, "UNIX:"+cli, FlagPersistent, nil)
	id := []byte("via-proxy")
	fake.WaitFor(t, "dc_client to reach the server", func() bool { return c.HasSession(id) != -1 })
	if !c.AddSession(id, []byte("proxied-data"), 300000) || c.HasSession(id) != 1 {
		t.Fatal("add/has through dc_client")
	}
	hammer(t, "UNIX:"+cli, FlagPersistent)

	s.Stop()
	fake.WaitFor(t, "dc_client to notice the server is gone", func() bool { return c.HasSession(id) == -1 })
	for i := 0; i < 3; i++ { // every op fails promptly; none hangs
		if c.HasSession(id) != -1 || c.AddSession([]byte("other"), []byte("data!"), 300000) {
			t.Fatal("operation succeeded with the server down")
		}
		if _, ok := c.GetSession(id, nil); ok {
			t.Fatal("get succeeded with the server down")
		}
	}
	fake.Start(t, "unix", srv, store)
	fake.WaitFor(t, "dc_client to reconnect", func() bool { return c.HasSession(id) == 1 })
	if !c.RemoveSession(id) || c.HasSession(id) != 0 {
		t.Fatal("remove/has after the server came back")
	}
}

func hammer(t *testing.T, target string, flags uint32) {
	t.Helper()
	hammerCtx(t, newCtx(t, target, flags, nil))
}

// hammerCtx runs 32 goroutines of add/get/remove with verified payloads.
func hammerCtx(t *testing.T, c *Ctx) {
	t.Helper()
	var bad atomic.Int64
	var first sync.Once
	var firstBad string // the first failure: which operation, how long it took, the context's state
	start := time.Now()
	stall, stop := redistest.StallWatch()
	defer stop()
	failed := func(what string, began time.Time) {
		bad.Add(1)
		first.Do(func() {
			firstBad = fmt.Sprintf("%s after %v (%v into the test), the context stalled: %v",
				what, time.Since(began).Round(time.Millisecond), began.Sub(start).Round(time.Millisecond), c.Stalled())
		})
	}
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, 2048)
			for i := 0; i < 20; i++ {
				id := []byte(fmt.Sprintf("%p-h%02d-%03d", c, w, i))
				data := bytes.Repeat(id, 1+(w+i)%20)
				began := time.Now()
				if !c.AddSession(id, data, 300000) {
					failed("add", began)
					continue
				}
				began = time.Now()
				if used, ok := c.GetSession(id, buf); !ok || !bytes.Equal(buf[:used], data) {
					failed(fmt.Sprintf("get (ok %v, %d bytes of %d)", ok, used, len(data)), began)
				}
				began = time.Now()
				if !c.RemoveSession(id) {
					failed("remove", began)
				}
			}
		}(w)
	}
	wg.Wait()
	if bad.Load() != 0 {
		// how long the process was kept from running, and where the
		// bytes of the exchange that timed out were
		t.Fatalf("%d failed or mismatched operations; the first: %s; the test process stalled up to %v; the context logged %q",
			bad.Load(), firstBad, stall().Round(time.Millisecond), stallLog.about(c.addr))
	}
}
