// SPDX-License-Identifier: Apache-2.0

// Package daemontest starts the project's real daemons for tests outside
// cmd/ (goimpl packages, examples): dc_server from $DC_BIN (set by make check) or built
// once from cmd/dc_server, on a unix socket in the test's temporary
// directory, stopped when the test ends.
package daemontest

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Bin returns the path of the named tool (dc_server, dc_client, ...).
func Bin(t testing.TB, name string) string {
	t.Helper()
	if d := os.Getenv("DC_BIN"); d != "" {
		return filepath.Join(d, name)
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "daemontest-bin")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", binDir+"/",
			"github.com/distcache-go/distcache/cmd/dc_server",
			"github.com/distcache-go/distcache/cmd/dc_client").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building the tools: %v", buildErr)
	}
	return filepath.Join(binDir, name)
}

// Daemon is a running tool.
type Daemon struct {
	Cmd    *exec.Cmd
	Addr   string // its distcache address, UNIX:<path>
	Path   string // the socket path
	stderr bytes.Buffer
	mu     sync.Mutex
}

// Stderr returns what the daemon has written to its standard error.
func (d *Daemon) Stderr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

type lockedWriter struct{ d *Daemon }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	return w.d.stderr.Write(p)
}

// Start runs tool name listening on a fresh unix socket (given as -listen)
// with args, and waits until the socket accepts connections.
func Start(t testing.TB, name string, args ...string) *Daemon {
	t.Helper()
	d := &Daemon{Path: filepath.Join(t.TempDir(), "sock")}
	d.Addr = "UNIX:" + d.Path
	d.Cmd = exec.Command(Bin(t, name), append([]string{"-listen", d.Addr}, args...)...)
	d.Cmd.Stderr = lockedWriter{d}
	if err := d.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Cmd.Process.Signal(syscall.SIGCONT)
		d.Cmd.Process.Kill()
		d.Cmd.Wait()
	})
	end := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", d.Path)
		if err == nil {
			c.Close()
			return d
		}
		if time.Now().After(end) {
			t.Fatalf("%s did not listen on %s: %v\n%s", name, d.Addr, err, d.Stderr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
