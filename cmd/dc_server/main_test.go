// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/hex"
	"io"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/sessiond"
)

func TestMain(m *testing.M) { tooltest.Main(m) }

// start runs dc_server on a temporary unix socket.
func start(t *testing.T, extra ...string) (*tooltest.Proc, string) {
	dir := tooltest.TempDir(t)
	sock := dir + "/s"
	p := tooltest.Start(t, tooltest.Bin(t, "dc_server"), append([]string{"-listen", "UNIX:" + sock}, extra...)...)
	tooltest.WaitDial(t, p, "unix", sock)
	return p, sock
}

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The worked examples of doc/PROTOCOL.md §7, byte for byte.
func TestWorkedExamples(t *testing.T) {
	_, sock := start(t)
	c := tooltest.Dial(t, "unix", sock)
	for _, ex := range []struct{ name, req, resp string }{
		{"ADD", "00110000 00 00000001 00 00 01 0018 000493e0 00000008 0102030405060708 5345535344415441",
			"00110000 01 00000001 00 00 01 0001 00"},
		{"ADD duplicate", "00110000 00 00000001 00 00 01 0018 000493e0 00000008 0102030405060708 5345535344415441",
			"00110000 01 00000001 00 00 01 0001 65"},
		{"GET hit", "00110000 00 00000002 00 01 01 0008 0102030405060708",
			"00110000 01 00000002 00 01 01 0008 5345535344415441"},
		{"HAVE hit", "00110000 00 00000003 00 03 01 0008 0102030405060708",
			"00110000 01 00000003 00 03 01 0001 00"},
		{"REMOVE", "00110000 00 00000004 00 02 01 0008 0102030405060708",
			"00110000 01 00000004 00 02 01 0001 00"},
		{"REMOVE miss", "00110000 00 00000005 00 02 01 0008 0102030405060708",
			"00110000 01 00000005 00 02 01 0001 01"},
		{"GET miss", "00110000 00 00000006 00 01 01 0008 0102030405060708",
			"00110000 01 00000006 00 01 01 0001 01"},
		{"HAVE miss", "00110000 00 00000007 00 03 01 0008 0102030405060708",
			"00110000 01 00000007 00 03 01 0001 01"},
		{"patch level ignored", "0011ffff 00 00000008 00 03 01 0001 01",
			"00110000 01 00000008 00 03 01 0001 01"},
		{"ADD timeout range", "00110000 00 00000009 00 00 01 000a 240c8401 00000001 aa bb",
			"00110000 01 00000009 00 00 01 0001 66"},
		{"ADD id_len 0", "00110000 00 0000000a 00 00 01 000a 00001000 00000000 aa bb",
			"00110000 01 0000000a 00 00 01 0001 67"},
		{"ADD no data", "00110000 00 0000000b 00 00 01 000a 00001000 00000002 aa bb",
			"00110000 01 0000000b 00 00 01 0001 64"},
	} {
		want := unhex(t, ex.resp)
		c.Write(unhex(t, ex.req))
		got := make([]byte, len(want))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("%s: %v", ex.name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: got %x, want %x", ex.name, got, want)
		}
	}
}

// checkAddGet stores a session under a fresh id and reads it back.
func checkAddGet(t testing.TB, c net.Conn, uid uint32) {
	id := []byte("check-" + strconv.FormatUint(uint64(uid), 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	data := bytes.Repeat([]byte{byte(uid)}, 300)
	m := tooltest.RoundTrip(t, c, uid, proto.OpAdd, tooltest.AddPayload(60000, id, data))
	if !bytes.Equal(m.Payload, []byte{0}) {
		t.Fatalf("ADD: %x", m.Payload)
	}
	m = tooltest.RoundTrip(t, c, uid, proto.OpGet, id)
	if !bytes.Equal(m.Payload, data) {
		t.Fatalf("GET: %d bytes, want the 300 stored", len(m.Payload))
	}
}

func TestBadInput(t *testing.T) {
	p, sock := start(t)
	tooltest.BadInput(t, tooltest.Target{Network: "unix", Addr: sock, Proc: p, Check: checkAddGet})
	if !strings.Contains(p.Out.String(), "protocol incompatibility") {
		t.Errorf("wrong protocol version not logged")
	}
}

func TestBadInputTCP(t *testing.T) {
	port := strconv.Itoa(tooltest.FreePort(t))
	p := tooltest.Start(t, tooltest.Bin(t, "dc_server"), "-listen", "IP:127.0.0.1:"+port)
	tooltest.WaitDial(t, p, "tcp", "127.0.0.1:"+port)
	c := tooltest.Dial(t, "tcp", "127.0.0.1:"+port)
	checkAddGet(t, c, 1)
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	tooltest.ExpectClosed(t, c, 5*time.Second)
	checkAddGet(t, tooltest.Dial(t, "tcp", "127.0.0.1:"+port), 2)
}

// E-5: requests pipelined behind large responses are all answered, in order.
func TestE5PipelinedLargeResponses(t *testing.T) {
	_, sock := start(t)
	c := tooltest.Dial(t, "unix", sock)
	id := []byte("big-session")
	data := bytes.Repeat([]byte("0123456789"), 3000)
	tooltest.RoundTrip(t, c, 1, proto.OpAdd, tooltest.AddPayload(60000, id, data))
	var batch []byte
	for i := 0; i < 50; i++ {
		batch = append(batch, tooltest.Request(uint32(100+i), proto.OpGet, id)...)
	}
	go c.Write(batch)
	rd := proto.NewReader(c, proto.WantResponses)
	for i := 0; i < 50; i++ {
		m, err := tooltest.ReadResponse(c, rd, 5*time.Second)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if m.UID != uint32(100+i) || !bytes.Equal(m.Payload, data) {
			t.Fatalf("response %d: uid %d, %d bytes", i, m.UID, len(m.Payload))
		}
	}
}

// E-12: a client that half-closes after its request still gets the answer.
func TestE12HalfClose(t *testing.T) {
	_, sock := start(t)
	c := tooltest.Dial(t, "unix", sock)
	c.Write(tooltest.Request(3, proto.OpHave, []byte("nothing")))
	c.(*net.UnixConn).CloseWrite()
	m, err := tooltest.ReadResponse(c, proto.NewReader(c, proto.WantResponses), 5*time.Second)
	if err != nil || !bytes.Equal(m.Payload, []byte{1}) {
		t.Fatalf("got %v, %v; want the HAVE answer 01", m, err)
	}
}

func TestFrameTimeoutClosesSlowloris(t *testing.T) {
	p, sock := start(t, "-frametimeout", "300")
	c := tooltest.Dial(t, "unix", sock)
	c.Write(tooltest.Request(1, proto.OpGet, []byte("slow"))[:5])
	tooltest.ExpectClosed(t, c, 5*time.Second)
	p.WaitOutput("partial request timed out", 5*time.Second)
	checkAddGet(t, tooltest.Dial(t, "unix", sock), 9)
}

func TestIdleTimeout(t *testing.T) {
	_, sock := start(t, "-idle", "1000")
	c := tooltest.Dial(t, "unix", sock)
	if m := tooltest.RoundTrip(t, c, 1, proto.OpHave, []byte("idle")); m.Payload[0] != 1 {
		t.Fatalf("HAVE: %x", m.Payload)
	}
	tooltest.ExpectClosed(t, c, 10*time.Second)
}

func TestMinLifetimeFloor(t *testing.T) {
	_, sock := start(t)
	c := tooltest.Dial(t, "unix", sock)
	add := func(id string, ms uint32) {
		m := tooltest.RoundTrip(t, c, 1, proto.OpAdd, tooltest.AddPayload(ms, []byte(id), []byte("data")))
		if !bytes.Equal(m.Payload, []byte{0}) {
			t.Fatalf("ADD %s: %x", id, m.Payload)
		}
	}
	have := func(id string) bool {
		return tooltest.RoundTrip(t, c, 2, proto.OpHave, []byte(id)).Payload[0] == 0
	}
	add("short", 1)     // httpd 2.4 style: under 1000 ms, gets the 300 s floor
	add("second", 1000) // taken as sent
	tooltest.Eventually(t, 10*time.Second, func() bool { return !have("second") }, "the 1000 ms session to expire")
	if !have("short") {
		t.Fatal("the session added with 1 ms expired: no lifetime floor")
	}
}

func TestMinLifetimeZeroKeepsTimeout(t *testing.T) {
	_, sock := start(t, "-minlifetime", "0")
	c := tooltest.Dial(t, "unix", sock)
	tooltest.RoundTrip(t, c, 1, proto.OpAdd, tooltest.AddPayload(1, []byte("short"), []byte("data")))
	tooltest.Eventually(t, 5*time.Second, func() bool {
		return tooltest.RoundTrip(t, c, 2, proto.OpHave, []byte("short")).Payload[0] == 1
	}, "the 1 ms session to expire")
}

func TestProgressLine(t *testing.T) {
	p, sock := start(t, "-progress", "4")
	c := tooltest.Dial(t, "unix", sock)
	tooltest.RoundTrip(t, c, 1, proto.OpAdd, tooltest.AddPayload(60000, []byte("p1"), []byte("data")))
	tooltest.RoundTrip(t, c, 2, proto.OpGet, []byte("p1"))
	tooltest.RoundTrip(t, c, 3, proto.OpGet, []byte("p2"))
	tooltest.RoundTrip(t, c, 4, proto.OpHave, []byte("p1"))
	p.WaitOutput("Info, total operations =       4  (+     4), total sessions =     1  (+  1), hits = 1, misses = 1", 5*time.Second)
}

func TestSignals(t *testing.T) {
	t.Run("SIGTERM", func(t *testing.T) {
		dir := tooltest.TempDir(t)
		p := tooltest.Start(t, tooltest.Bin(t, "dc_server"), "-listen", "UNIX:"+dir+"/s", "-pidfile", dir+"/pid")
		tooltest.WaitDial(t, p, "unix", dir+"/s")
		c := tooltest.Dial(t, "unix", dir+"/s")
		checkAddGet(t, c, 1)
		p.Signal(syscall.SIGTERM)
		if code := p.Wait(10 * time.Second); code != 0 {
			t.Fatalf("exit %d after SIGTERM", code)
		}
		for _, f := range []string{"/s", "/pid"} {
			if _, err := os.Stat(dir + f); !os.IsNotExist(err) {
				t.Errorf("%s left behind", f)
			}
		}
	})
	t.Run("USR1 ignored", func(t *testing.T) {
		p, sock := start(t)
		p.Signal(syscall.SIGUSR1)
		p.Signal(syscall.SIGUSR2)
		checkAddGet(t, tooltest.Dial(t, "unix", sock), 1)
		if p.Exited() {
			t.Fatal("exited on SIGUSR1 without -killable")
		}
	})
	t.Run("USR1 killable", func(t *testing.T) {
		p, _ := start(t, "-killable")
		p.Signal(syscall.SIGUSR1)
		if code := p.Wait(10 * time.Second); code != 0 {
			t.Fatalf("exit %d, want 0", code)
		}
	})
}

func TestStartupErrors(t *testing.T) {
	bin := tooltest.Bin(t, "dc_server")
	dir := tooltest.TempDir(t)
	held, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := strconv.Itoa(held.Addr().(*net.TCPAddr).Port)
	live, sock := start(t)
	_ = live
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"-?"}, 0, "Usage: dc_server"},
		{"no listen", nil, 1, "Error, must provide -listen"},
		{"missing value", []string{"-listen"}, 1, "Error, -listen requires an argument"},
		{"unknown", []string{"-listen", "IP:1", "-fast"}, 1, `Error, "-fast" not recognised`},
		{"nearmap with a backend", []string{"-listen", "IP:1", "-nearmap", "-backend", "redis://127.0.0.1:1"}, 1, "Error, -nearmap shares the sessions this process keeps in memory"},
		{"nearmap on tcp", []string{"-listen", "IP:127.0.0.1:0", "-nearmap"}, 1, "Error, -nearmap hands the map over a unix socket"},
		{"sessions too small", []string{"-listen", "IP:1", "-sessions", "10"}, 1, "Error, -sessions given an invalid argument"},
		{"sessions garbage", []string{"-listen", "IP:1", "-sessions", "lots"}, 1, "Error, -sessions given an invalid argument"},
		{"progress range", []string{"-listen", "IP:1", "-progress", "1000001"}, 1, "Error, -progress given an invalid argument"},
		{"bad address", []string{"-listen", "TCP:1"}, 1, "Error, can't listen on 'TCP:1'"},
		{"port in use", []string{"-listen", "IP:127.0.0.1:" + busy}, 1, "address already in use"},
		{"live socket", []string{"-listen", "UNIX:" + sock}, 1, "another server is already listening"},
		{"unwritable pidfile", []string{"-listen", "UNIX:" + dir + "/p", "-pidfile", dir + "/no/such/dir/pid"}, 1, "Error, couldn't open 'pidfile' at '" + dir + "/no/such/dir/pid'"},
		{"unknown user", []string{"-listen", "UNIX:" + dir + "/u", "-user", "no-such-user-xyz"}, 1, "Error, couldn't become user 'no-such-user-xyz'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := tooltest.Run(t, 10*time.Second, bin, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d and %q", code, out, tc.code, tc.want)
			}
			if code != 0 && strings.Count(strings.TrimSpace(out), "\n") > 0 && !strings.Contains(out, "Usage:") {
				t.Errorf("error is more than one line:\n%s", out)
			}
		})
	}
	for _, f := range []string{"/p", "/u"} {
		if _, err := os.Stat(dir + f); err == nil {
			t.Errorf("socket %s left after a failed start", f)
		}
	}
	// the live server was not disturbed
	checkAddGet(t, tooltest.Dial(t, "unix", sock), 1)
}

func TestDaemonRelativePaths(t *testing.T) {
	dir := tooltest.TempDir(t)
	p := tooltest.StartIn(t, dir, tooltest.Bin(t, "dc_server"), "-listen", "UNIX:s", "-pidfile", "pid", "-daemon")
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Out.String())
	}
	b, err := os.ReadFile(dir + "/pid")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b), "\n") {
		t.Errorf("pid file %q lacks the newline", b)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 1 {
		t.Fatalf("pid file %q", b)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd"); err != nil || cwd != "/" {
		t.Errorf("daemon cwd %q, %v; want /", cwd, err)
	}
	for fd := 0; fd <= 2; fd++ {
		if f, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(fd)); err != nil || f != os.DevNull {
			t.Errorf("daemon descriptor %d on %q, %v; want %s", fd, f, err, os.DevNull)
		}
	}
	checkAddGet(t, tooltest.Dial(t, "unix", dir+"/s"), 1)
	syscall.Kill(pid, syscall.SIGTERM)
	tooltest.Eventually(t, 10*time.Second, func() bool {
		_, e1 := os.Stat(dir + "/pid")
		_, e2 := os.Stat(dir + "/s")
		return os.IsNotExist(e1) && os.IsNotExist(e2)
	}, "the daemon to remove its pid file and socket")
}

func TestUserDropsGroups(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	dir := tooltest.TempDir(t)
	os.Chmod(dir, 0o755)
	p := tooltest.Start(t, tooltest.Bin(t, "dc_server"), "-listen", "IP:127.0.0.1:"+strconv.Itoa(tooltest.FreePort(t)), "-user", "nobody")
	var status string
	tooltest.Eventually(t, 10*time.Second, func() bool {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Cmd.Process.Pid) + "/status")
		status = string(b)
		return strings.Contains(status, "Uid:\t"+u.Uid+"\t")
	}, "the server to run as nobody")
	if !strings.Contains(status, "Gid:\t"+u.Gid+"\t") {
		t.Errorf("gid not switched:\n%s", status)
	}
	for _, line := range strings.Split(status, "\n") {
		if strings.HasPrefix(line, "Groups:") && strings.Contains(line, " 0 ") || line == "Groups:\t0 " {
			t.Errorf("root group kept: %q", line)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"4096", 4096, true}, {"64k", 64 << 10, true}, {"256M", 256 << 20, true},
		{"2G", 2 << 30, true}, {"1g", 1 << 30, true}, {"", 0, false}, {"M", 0, false},
		{"-1", 0, false}, {"12x", 0, false}, {"99999999999G", 0, false},
	} {
		got, ok := parseBytes(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FD:<n> listens on an inherited socket (the original exited on the first
// connection, E-27).
func TestFDListener(t *testing.T) {
	dir := tooltest.TempDir(t)
	ln, err := net.Listen("unix", dir+"/fd")
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	f, err := ln.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	p := tooltest.StartWith(t, "", []*os.File{f}, tooltest.Bin(t, "dc_server"), "-listen", "FD:3")
	f.Close()
	ln.Close()
	tooltest.WaitDial(t, p, "unix", dir+"/fd")
	for i := 0; i < 3; i++ {
		checkAddGet(t, tooltest.Dial(t, "unix", dir+"/fd"), uint32(i))
	}
}

// -sessiond serves stunnel's UDP protocol from the same cache: a NEW is
// visible to a GET datagram and, under the id 's'+key, to distcache.
func TestSessiond(t *testing.T) {
	udpPort := strconv.Itoa(tooltest.FreeUDPPort(t))
	p, sock := start(t, "-sessiond", "IP:127.0.0.1:"+udpPort)
	uc, err := net.Dial("udp4", "127.0.0.1:"+udpPort)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	key, _ := sessiond.KeyFromID([]byte("stunnel-session-id"))
	val := bytes.Repeat([]byte{0x30}, 200)
	nw := sessiond.Packet{Type: sessiond.TypeNew, Timeout: 300, Key: key, Value: val}
	get := sessiond.Packet{Type: sessiond.TypeGet, Key: key}
	buf := make([]byte, 1024)
	var reply sessiond.Packet
	// UDP may drop; resend until the GET finds the entry.
	tooltest.Eventually(t, 10*time.Second, func() bool {
		uc.Write(nw.Append(nil))
		uc.Write(get.Append(nil))
		uc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := uc.Read(buf)
		if err != nil {
			return false
		}
		reply, err = sessiond.ParseReply(buf[:n])
		return err == nil && reply.Type == sessiond.TypeFound
	}, "a sessiond GET to find the stored session")
	if !bytes.Equal(reply.Value, val) {
		t.Fatalf("sessiond GET value %x", reply.Value)
	}
	c := tooltest.Dial(t, "unix", sock)
	m := tooltest.RoundTrip(t, c, 1, proto.OpGet, append([]byte{sessiond.IDPrefix}, key[:]...))
	if !bytes.Equal(m.Payload, val) {
		t.Fatalf("distcache GET of the sessiond entry: %x", m.Payload)
	}
	if p.Exited() {
		t.Fatal("exited")
	}
}

func TestMaxConns(t *testing.T) {
	p, sock := start(t, "-maxconns", "2")
	a := tooltest.Dial(t, "unix", sock)
	checkAddGet(t, a, 1)
	b := tooltest.Dial(t, "unix", sock)
	checkAddGet(t, b, 2)
	c := tooltest.Dial(t, "unix", sock)
	tooltest.ExpectClosed(t, c, 5*time.Second)
	p.WaitOutput("already at -maxconns 2", 5*time.Second)
	a.Close()
	// the slot comes back once the server has seen the close
	tooltest.Eventually(t, 5*time.Second, func() bool {
		d, err := net.Dial("unix", sock)
		if err != nil {
			return false
		}
		defer d.Close()
		d.Write(tooltest.Request(1, proto.OpHave, []byte("x")))
		_, err = tooltest.ReadResponse(d, proto.NewReader(d, proto.WantResponses), time.Second)
		return err == nil
	}, "a freed connection slot")
	checkAddGet(t, b, 3)
}
