// SPDX-License-Identifier: Apache-2.0

// Package tooltest is the harness of the command-line tools' tests: it
// builds the tools (or takes them from $DC_BIN), runs them as processes,
// waits on conditions (a socket answering, a line in the log) instead of
// sleeping, and speaks raw protocol bytes.
package tooltest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
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

	"github.com/distcache-go/distcache/cmd/internal/tool"
	"github.com/distcache-go/distcache/goimpl/proto"
	"golang.org/x/sys/unix"
)

var (
	binMu  sync.Mutex
	built  = map[string]error{}
	tmpDir string
)

// Main is the TestMain of every tool package: it runs the tests and removes
// the binaries it built.
func Main(m *testing.M) {
	code := m.Run()
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

// Bin returns the path of a tool: $DC_BIN/<name> if DC_BIN is set (the
// Makefile points it at the freshly built tools), else the tool built once
// per test process into a temporary directory.
func Bin(t testing.TB, name string) string {
	t.Helper()
	if d := os.Getenv("DC_BIN"); d != "" {
		p, err := filepath.Abs(filepath.Join(d, name))
		if err == nil {
			_, err = os.Stat(p)
		}
		if err != nil {
			t.Fatalf("DC_BIN: %v", err)
		}
		return p
	}
	binMu.Lock()
	defer binMu.Unlock()
	err, done := built[name]
	if !done {
		err = build(name)
		built[name] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(tmpDir, name)
}

func build(name string) error {
	if tmpDir == "" {
		d, err := os.MkdirTemp("", "dcbin")
		if err != nil {
			return err
		}
		tmpDir = d
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(tmpDir, name), "./cmd/"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %v\n%s", name, err, out)
	}
	return nil
}

func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod above the test directory")
		}
		d = parent
	}
}

// TempDir is a short temporary directory (unix socket paths must stay
// under 108 bytes), removed after the test.
func TempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "dct")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Log is a goroutine-safe buffer for a process's output.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Proc is a running tool.
type Proc struct {
	t    testing.TB
	Cmd  *exec.Cmd
	Out  *Log // stdout and stderr
	done chan struct{}
	err  error
}

// Start runs a tool; it is killed at the end of the test if still running.
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	return StartIn(t, "", bin, args...)
}

// StartIn is Start with the working directory dir.
func StartIn(t testing.TB, dir, bin string, args ...string) *Proc {
	t.Helper()
	return StartWith(t, dir, nil, bin, args...)
}

// StartWith is Start with a working directory and descriptors 3, 4, ...
func StartWith(t testing.TB, dir string, files []*os.File, bin string, args ...string) *Proc {
	t.Helper()
	return start(t, dir, files, nil, bin, args)
}

func start(t testing.TB, dir string, files []*os.File, env []string, bin string, args []string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Dir = dir
	cmd.ExtraFiles = files
	return startCmd(t, cmd)
}

// startCmd starts cmd with its output collected, and kills it at the end
// of the test if still running.
func startCmd(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{t: t, Cmd: cmd, Out: &Log{}, done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if !p.Exited() {
			p.Cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), p.Out.String())
		}
	})
	return p
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits (at most d) for the process to end and returns its exit code.
func (p *Proc) Wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("%s did not exit within %v; output:\n%s", p.Cmd.Path, d, p.Out.String())
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	p.t.Fatal(p.err)
	return -1
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) {
	p.Cmd.Process.Signal(sig)
}

// WaitOutput waits until the output contains s.
func (p *Proc) WaitOutput(s string, d time.Duration) {
	p.t.Helper()
	Eventually(p.t, d, func() bool { return strings.Contains(p.Out.String(), s) }, "output containing %q", s)
}

// Run runs a tool to completion (at most d) and returns its exit code and output.
func Run(t testing.TB, d time.Duration, bin string, args ...string) (int, string) {
	t.Helper()
	p := Start(t, bin, args...)
	code := p.Wait(d)
	return code, p.Out.String()
}

// Eventually polls cond every few milliseconds until it holds or d passes.
func Eventually(t testing.TB, d time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for delay := time.Millisecond; ; {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for "+what, append([]any{d}, args...)...)
		}
		time.Sleep(delay)
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// WaitDial waits until network/addr accepts connections, failing early if
// the process p (may be nil) exits.
func WaitDial(t testing.TB, p *Proc, network, addr string) {
	t.Helper()
	Eventually(t, 10*time.Second, func() bool {
		if p != nil && p.Exited() {
			t.Fatalf("%s exited early:\n%s", p.Cmd.Path, p.Out.String())
		}
		c, err := net.DialTimeout(network, addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}, "%s %s to accept connections", network, addr)
}

// Dial connects or fails the test.
func Dial(t testing.TB, network, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Request encodes one request message.
func Request(uid uint32, op proto.Op, payload []byte) []byte {
	b, err := proto.AppendMessage(nil, &proto.Message{UID: uid, Op: op, Payload: payload})
	if err != nil {
		panic(err)
	}
	return b
}

// AddPayload encodes an ADD payload.
func AddPayload(timeoutMS uint32, id, data []byte) []byte {
	return proto.AppendAddRequest(nil, timeoutMS, id, data)
}

// ReadResponse reads one response message with a deadline.
func ReadResponse(c net.Conn, rd *proto.Reader, d time.Duration) (*proto.Message, error) {
	c.SetReadDeadline(time.Now().Add(d))
	m, err := rd.ReadMessage()
	if err != nil {
		return nil, err
	}
	cp := *m
	cp.Payload = append([]byte(nil), m.Payload...)
	return &cp, nil
}

// RoundTrip sends one request on c and returns the response.
func RoundTrip(t testing.TB, c net.Conn, uid uint32, op proto.Op, payload []byte) *proto.Message {
	t.Helper()
	if _, err := c.Write(Request(uid, op, payload)); err != nil {
		t.Fatalf("write: %v", err)
	}
	m, err := ReadResponse(c, proto.NewReader(c, proto.WantResponses), 10*time.Second)
	if err != nil {
		t.Fatalf("reading the response to uid %d: %v", uid, err)
	}
	if m.UID != uid || m.Op != op || !m.Response {
		t.Fatalf("response uid %d op %v, want uid %d op %v", m.UID, m.Op, uid, op)
	}
	return m
}

// ExpectClosed checks that the peer closes c (reads EOF or a reset) within
// d, after possibly sending some bytes.
func ExpectClosed(t testing.TB, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v", d)
	}
}

// Exchange sends one request on a new connection and returns the answer.
func Exchange(sock string, op proto.Op, payload []byte) ([]byte, error) {
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(Request(7, op, payload)); err != nil {
		return nil, err
	}
	m, err := proto.NewReader(c, proto.WantResponses).ReadMessage()
	if err != nil {
		return nil, err
	}
	return m.Payload, nil
}

// ReadPID reads a pid file (0 if it holds none).
func ReadPID(path string) int {
	b, _ := os.ReadFile(path)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Gone reports whether process pid has exited (a zombie counts: the
// first is the test's child, and its successor holds the test's output
// pipe, so waiting for it would wait for the successor).
func Gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] == "Z"
}

// ReexecUnderLoad runs op from 4 goroutines (worker 0..3, n counting up)
// while it re-executes the daemon p rounds times with tool.UpgradeSignal,
// following its pid file; it kills the last successor at the end of the
// test. It fails the test if any op failed, and returns how many ran.
func ReexecUnderLoad(t *testing.T, p *Proc, pidfile string, rounds int, op func(worker, n int) error) int64 {
	t.Helper()
	t.Cleanup(func() {
		if pid := ReadPID(pidfile); pid > 0 && pid != p.Cmd.Process.Pid {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	var ops, failed atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				err := op(w, n)
				ops.Add(1)
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
				}
			}
		}(w)
	}
	var once sync.Once
	end := func() { once.Do(func() { close(stop); wg.Wait() }) }
	defer end() // also when a wait below fails the test
	progress := func(what string, args ...any) {
		before := ops.Load()
		Eventually(t, 10*time.Second, func() bool { return ops.Load() > before+50 }, what, args...)
	}
	pid := p.Cmd.Process.Pid
	for round := 1; round <= rounds; round++ {
		progress("load before re-exec %d", round)
		syscall.Kill(pid, tool.UpgradeSignal)
		Eventually(t, 30*time.Second, func() bool {
			n := ReadPID(pidfile)
			return n > 0 && n != pid
		}, "a new pid in the pid file after re-exec %d", round)
		old := pid
		pid = ReadPID(pidfile)
		Eventually(t, 30*time.Second, func() bool { return Gone(old) }, "process %d to exit", old)
	}
	progress("load after the last re-exec")
	end()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d operations failed, first: %v", n, ops.Load(), firstErr)
	}
	return ops.Load()
}

// Client is one persistent connection of a load test: it dials once and
// keeps the connection; an exchange that fails is an error (there is no
// retry), and the next one dials again.
type Client struct {
	Network, Addr string
	c             net.Conn
	rd            *proto.Reader
	uid           uint32
	Dials         int // connections made
}

// Do sends one request and returns the answer's payload.
func (k *Client) Do(op proto.Op, payload []byte) ([]byte, error) {
	if k.c == nil {
		c, err := net.DialTimeout(k.Network, k.Addr, 2*time.Second)
		if err != nil {
			return nil, err
		}
		k.c, k.rd = c, proto.NewReader(c, proto.WantResponses)
		k.Dials++
	}
	k.uid++
	k.c.SetDeadline(time.Now().Add(5 * time.Second))
	m, err := func() (*proto.Message, error) {
		if _, err := k.c.Write(Request(k.uid, op, payload)); err != nil {
			return nil, err
		}
		return k.rd.ReadMessage()
	}()
	if err == nil && (m.UID != k.uid || m.Op != op) {
		err = fmt.Errorf("answer uid %d op %v to request uid %d op %v", m.UID, m.Op, k.uid, op)
	}
	if err != nil {
		k.Close()
		return nil, fmt.Errorf("persistent connection (request %d on it): %w", k.uid, err)
	}
	return m.Payload, nil
}

// Close closes the connection.
func (k *Client) Close() {
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

// DCTest runs dc_test against addr (a distcache address) until StopDCTest:
// 4 clients with their own sessions, persistent or a connection per
// operation. Its own model checks every answer. It returns once dc_test
// has answered 200 operations.
func DCTest(t testing.TB, addr string, persistent bool) *Proc {
	t.Helper()
	args := []string{"-connect", addr, "-clients", "4", "-sessions", "40", "-ops", "1000000", "-timeout", "600", "-timevar", "5", "-progress", "200"}
	if persistent {
		args = append(args, "-persistent")
	}
	// The library's stall bound (100 ms, adapting) is not what these
	// load tests test, and a loaded test machine can exceed it.
	p := StartEnv(t, []string{"DISTCACHE_TIMEOUT_MS=5000"}, Bin(t, "dc_test"), args...)
	p.WaitOutput("total operations", 20*time.Second)
	return p
}

// StopDCTest stops a DCTest run and fails the test unless every answer
// was right; it returns the summary line.
func StopDCTest(t testing.TB, p *Proc) string {
	t.Helper()
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(20 * time.Second); code != 0 || !strings.Contains(p.Out.String(), "all tests complete") {
		t.Fatalf("dc_test: exit %d:\n%s", code, p.Out.String())
	}
	for _, l := range strings.Split(p.Out.String(), "\n") {
		if strings.Contains(l, "operations in") {
			return l
		}
	}
	return ""
}

// Nobody is the uid (and gid, nogroup) RunAsNobody runs as.
const Nobody = 65534

// RunAsNobody runs a tool as user nobody, group nogroup (root only: the
// test is skipped otherwise), from a copy that nobody may run, with the
// extra environment variables env ("NAME=value"), to completion (at most
// d); it returns the exit code and output.
func RunAsNobody(t testing.TB, d time.Duration, env []string, name string, args ...string) (int, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a tool as another user")
	}
	b, err := os.ReadFile(Bin(t, name))
	if err != nil {
		t.Fatal(err)
	}
	dir := TempDir(t)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, name)
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: Nobody, Gid: Nobody}}
	p := startCmd(t, cmd)
	code := p.Wait(d)
	return code, p.Out.String()
}

// GetMetrics fetches http://addr/metrics on a new connection and checks
// that it is the daemon's exposition.
func GetMetrics(addr string) error {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && (resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("connections_accepted_total"))) {
		err = fmt.Errorf("/metrics: %s, %d bytes", resp.Status, len(b))
	}
	return err
}

// StartEnv is Start with extra environment variables ("NAME=value").
func StartEnv(t testing.TB, env []string, bin string, args ...string) *Proc {
	t.Helper()
	return start(t, "", nil, env, bin, args)
}

// Notification is one message a daemon sent to the NOTIFY_SOCKET of
// NotifySocket, with the sender's pid (SCM_CREDENTIALS), as systemd sees
// it.
type Notification struct {
	PID   int
	State string
}

// NotifySocket listens where a Type=notify daemon reports (set
// NOTIFY_SOCKET to the path returned) and delivers what arrives, as systemd
// would receive it; any user may send to it.
func NotifySocket(t testing.TB, dir string) (string, <-chan Notification) {
	t.Helper()
	path := dir + "/notify"
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	os.Chmod(path, 0o777)
	raw, err := c.SyscallConn()
	if err == nil {
		raw.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	}
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan Notification, 16)
	go func() {
		buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(unix.SizeofUcred))
		for {
			n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			if err != nil {
				close(ch)
				return
			}
			m := Notification{PID: -1, State: string(buf[:n])}
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) > 0 {
				if cred, err := unix.ParseUnixCredentials(&msgs[0]); err == nil {
					m.PID = int(cred.Pid)
				}
			}
			ch <- m
		}
	}()
	return path, ch
}

// SocketCase is one run of SocketAccess: a tool's extra options, and
// whether another user may then use its socket.
type SocketCase struct {
	Args    []string
	Allowed bool
}

// SocketAccess runs the tool bin once per case, under the most permissive
// umask, with -listen on a unix socket and -pidfile added to args and the
// case's options, waits for ready in its output (when not empty), and
// checks whether another user can use the socket (checkOtherUser).
func SocketAccess(t *testing.T, bin string, args []string, ready string, cases ...SocketCase) {
	t.Helper()
	dir := TempDir(t)
	os.Chmod(dir, 0o755)
	defer syscall.Umask(syscall.Umask(0))
	for i, c := range cases {
		sock := dir + "/s" + strconv.Itoa(i)
		a := append(append([]string{"-listen", "UNIX:" + sock, "-pidfile", sock + ".pid"}, args...), c.Args...)
		p := Start(t, bin, a...)
		WaitDial(t, p, "unix", sock)
		if ready != "" {
			p.WaitOutput(ready, 10*time.Second)
		}
		checkOtherUser(t, sock, sock+".pid", c.Allowed)
		p.Signal(syscall.SIGTERM)
		p.Wait(10 * time.Second)
	}
}

// checkOtherUser runs dc_test as nobody through the unix socket sock of a
// running tool, once the tool has written pidfile (it does so after
// setting the socket's owner and mode): dc_test must complete when
// allowed, and fail, with the socket mode 0600, when not.
func checkOtherUser(t testing.TB, sock, pidfile string, allowed bool) {
	t.Helper()
	Eventually(t, 10*time.Second, func() bool { _, err := os.Stat(pidfile); return err == nil }, "the pid file %s", pidfile)
	// A loaded machine may take more than the default 100 ms to answer.
	code, out := RunAsNobody(t, 60*time.Second, []string{"DISTCACHE_TIMEOUT_MS=10000"}, "dc_test", "-connect", "UNIX:"+sock, "-sessions", "4", "-ops", "40")
	switch fi, err := os.Stat(sock); {
	case err != nil:
		t.Error(err)
	case allowed && code != 0:
		t.Errorf("%s (mode %04o): another user failed (exit %d):\n%s", sock, fi.Mode().Perm(), code, out)
	case !allowed && (code == 0 || fi.Mode().Perm() != 0o600):
		t.Errorf("%s: mode %04o, want 0600; another user's dc_test exited %d:\n%s", sock, fi.Mode().Perm(), code, out)
	}
}

// ExpectGet asks sock (a new connection) for id and fails unless the
// answer is want.
func ExpectGet(sock string, id []byte, want string) error {
	ans, err := Exchange(sock, proto.OpGet, id)
	if err == nil && string(ans) != want {
		err = fmt.Errorf("GET %s answered %x", id, ans)
	}
	return err
}

// StopClean stops p with SIGTERM and fails the test unless it exits 0.
func StopClean(t testing.TB, p *Proc) {
	t.Helper()
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Out.String())
	}
}
