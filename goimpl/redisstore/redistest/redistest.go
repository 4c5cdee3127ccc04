// SPDX-License-Identifier: Apache-2.0

// Package redistest starts real Redis deployments on loopback for tests:
// one server, a master with replicas and sentinels, a cluster. Servers are
// Debian's redis-server (sentinels are redis-server --sentinel and clusters
// are made with redis-cli --cluster create); every process is killed when
// its test ends.
//
// Ports are taken from 26000-26699 (the project's Redis test range; the
// scripts in tests/redis use 26700-26999), starting at a random one and
// moving on when a port is taken, so test binaries running at once do not
// collide.
//
// Require skips a test when redis-server is not installed, and fails it
// instead when DISTCACHE_REQUIRE_E2E is set (CI installs the packages).
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	portLo = 26000
	portHi = 26700
)

// Require skips t when the Redis binaries are missing (fails it under
// DISTCACHE_REQUIRE_E2E).
func Require(t testing.TB, bins ...string) {
	t.Helper()
	for _, b := range append([]string{"redis-server"}, bins...) {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("DISTCACHE_REQUIRE_E2E") != "" {
				t.Fatalf("%s is not installed (needed under DISTCACHE_REQUIRE_E2E; .ci/packages.d/redis.txt)", b)
			}
			t.Skipf("%s is not installed", b)
		}
	}
}

// Server is one redis-server (or sentinel) process.
type Server struct {
	Port int
	Dir  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Kill sends SIGKILL and waits for the process to go.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Stop and Cont freeze and thaw the process (SIGSTOP, SIGCONT): a server
// that holds its connections open and answers nothing.
func (s *Server) Stop() { _ = s.cmd.Process.Signal(syscall.SIGSTOP) }

// Cont resumes a stopped server.
func (s *Server) Cont() { _ = s.cmd.Process.Signal(syscall.SIGCONT) }

// Alive reports whether the process is still running.
func (s *Server) Alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Do sends one command and returns the reply (see Cmd).
func (s *Server) Do(args ...string) (string, error) { return Cmd(s.Addr(), args...) }

func freePort(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// ports returns n consecutive free ports (a cluster node needs its bus
// port too).
func ports(t testing.TB, n int) int {
	t.Helper()
	start := portLo + rand.IntN(portHi-portLo-n)
	for i := 0; i < portHi-portLo; i++ {
		p := portLo + (start-portLo+i)%(portHi-portLo-n)
		ok := true
		for j := 0; j < n && ok; j++ {
			ok = freePort(p + j)
		}
		if ok {
			return p
		}
	}
	t.Fatalf("no free ports in %d-%d", portLo, portHi)
	return 0
}

// Start runs redis-server with the given extra arguments (config
// directives as --name value pairs) on a free port, and waits until it
// answers PING. sentinel starts it in Sentinel mode from a config file
// holding conf (the port and dir are added).
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	return start(t, "", extra)
}

// StartSentinel runs a sentinel whose config file holds conf.
func StartSentinel(t testing.TB, conf string) *Server {
	t.Helper()
	return start(t, conf, nil)
}

func start(t testing.TB, sentinelConf string, extra []string) *Server {
	t.Helper()
	for attempt := 0; attempt < 10; attempt++ {
		cluster := false
		for _, a := range extra {
			cluster = cluster || a == "--cluster-enabled"
		}
		n := 1
		if cluster {
			n = 2
		}
		p := ports(t, n)
		dir, err := os.MkdirTemp(t.TempDir(), "redis")
		if err != nil {
			t.Fatal(err)
		}
		var args []string
		if sentinelConf != "" {
			conf := filepath.Join(dir, "sentinel.conf")
			body := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\n%s\n", p, dir, sentinelConf)
			if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			args = []string{conf, "--sentinel"}
		} else {
			args = []string{"--port", strconv.Itoa(p), "--bind", "127.0.0.1", "--protected-mode", "no",
				"--save", "", "--appendonly", "no", "--dir", dir}
			if cluster {
				args = append(args, "--cluster-port", strconv.Itoa(p+1))
			}
			args = append(args, extra...)
		}
		s := &Server{Port: p, Dir: dir, args: args}
		if err := s.run(t); err != nil {
			if errors.Is(err, errExited) {
				continue // most likely the port was taken meanwhile: try another
			}
			t.Fatal(err)
		}
		return s
	}
	t.Fatal("redis-server would not start (10 attempts)")
	return nil
}

// run starts the process and waits until it answers PING.
func (s *Server) run(t testing.TB) error {
	logf, err := os.OpenFile(filepath.Join(s.Dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command("redis-server", s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("redis-server: %v", err)
	}
	done := make(chan struct{})
	s.cmd, s.done = cmd, done
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-done
	})
	err = waitFor(10*time.Second, func() error {
		if !s.Alive() {
			return errExited
		}
		r, err := s.Do("PING")
		if err != nil && strings.HasPrefix(err.Error(), "NOAUTH") {
			return nil // up, and wants a password
		}
		if err == nil && r != "PONG" {
			err = fmt.Errorf("PING answered %q", r)
		}
		return err
	})
	if err != nil && !errors.Is(err, errExited) {
		b, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
		err = fmt.Errorf("redis-server on port %d did not answer: %v\n%s", s.Port, err, b)
	}
	return err
}

// Restart starts a killed server again, on the same port with the same
// configuration (an empty data set: nothing is saved).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.Alive() {
		t.Fatalf("Restart of the running server on port %d", s.Port)
	}
	if err := s.run(t); err != nil {
		t.Fatal(err)
	}
}

var errExited = errors.New("exited")

// waitFor polls f every 20 ms until it returns nil or d has passed.
func waitFor(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || errors.Is(err, errExited) {
			return err
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// WaitFor is waitFor for tests: it fails t when f has not returned nil
// within d.
func WaitFor(t testing.TB, d time.Duration, what string, f func() error) {
	t.Helper()
	if err := waitFor(d, f); err != nil {
		t.Fatalf("%s: not within %v: %v", what, d, err)
	}
}

// Cmd sends one command to addr on a fresh connection and returns the
// reply as text: a status or bulk string as is, an integer in decimal, an
// array as its elements one per line, nil as "(nil)"; an error reply is
// returned as an error.
func Cmd(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(c))
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "(nil)", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "(nil)", nil
		}
		var parts []string
		for i := 0; i < n; i++ {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// Field returns the value of "name:value" in an INFO-style reply.
func Field(info, name string) string {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(l, "\r"), name+":"); ok {
			return v
		}
	}
	return ""
}

// FreePort returns a port of the range that is free now (for a second
// listener of a server, such as --tls-port).
func FreePort(t testing.TB) int {
	t.Helper()
	return ports(t, 1)
}

// StallWatch measures how late this process gets to run: a goroutine
// asks to sleep 5 ms over and over and keeps the worst lateness. On a
// loaded machine a whole process can be descheduled for hundreds of
// milliseconds; a latency bound under test adds this to what the code
// under test controls. stop ends the watch and returns the worst stall.
func StallWatch() (worst func() time.Duration, stop func()) {
	var w atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			start := time.Now()
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if late := time.Since(start) - 5*time.Millisecond; int64(late) > w.Load() {
				w.Store(int64(late))
			}
		}
	}()
	var once sync.Once
	return func() time.Duration { return time.Duration(w.Load()) }, func() { once.Do(func() { close(done) }) }
}
