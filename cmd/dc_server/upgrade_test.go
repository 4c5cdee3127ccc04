// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tool"
	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/seal"
)

// Three re-execs under load, in the four shapes of client: straight to
// dc_server or through a dc_client, with a connection per operation or
// persistent connections. No request fails, no connection is refused, a
// persistent connection is the same one from start to end, every session
// stored before the first re-exec is still there after the last, and
// dc_test running alongside (its own model checking every answer) sees
// nothing wrong.
func TestUpgradeUnderLoad(t *testing.T) {
	for _, via := range []string{"direct", "dc_client"} {
		for _, persistent := range []bool{false, true} {
			name := via + "/per-operation"
			if persistent {
				name = via + "/persistent"
			}
			t.Run(name, func(t *testing.T) { upgradeUnderLoad(t, via == "dc_client", persistent) })
		}
	}
}

func upgradeUnderLoad(t *testing.T, viaClient, persistent bool) {
	dir := tooltest.TempDir(t)
	srvSock, pidfile := dir+"/s", dir+"/pid"
	p := tooltest.Start(t, tooltest.Bin(t, "dc_server"), "-listen", "UNIX:"+srvSock, "-pidfile", pidfile)
	tooltest.WaitDial(t, p, "unix", srvSock)
	sock := srvSock
	var proxy *tooltest.Proc
	if viaClient {
		sock = dir + "/c"
		// -reqtimeout: on a loaded test machine an answer may take
		// over the default 100 ms stall bound, which is not what this
		// tests (a re-exec makes clients wait a few milliseconds).
		proxy = tooltest.Start(t, tooltest.Bin(t, "dc_client"), "-listen", "UNIX:"+sock, "-server", "UNIX:"+srvSock, "-reqtimeout", "5000")
		tooltest.WaitDial(t, proxy, "unix", sock)
	}
	const stored = 300
	id := func(i int) []byte { return []byte(fmt.Sprintf("before-%04d", i)) }
	tooltest.Eventually(t, 10*time.Second, func() bool {
		ans, err := tooltest.Exchange(sock, proto.OpAdd, proto.AppendAddRequest(nil, 600000, id(0), []byte("session data")))
		return err == nil && len(ans) == 1 && ans[0] == 0
	}, "the first ADD")
	for i := 1; i < stored; i++ {
		ans, err := tooltest.Exchange(sock, proto.OpAdd, proto.AppendAddRequest(nil, 600000, id(i), []byte("session data")))
		if err != nil || len(ans) != 1 || ans[0] != 0 {
			t.Fatalf("ADD %d: %x %v", i, ans, err)
		}
	}
	load := tooltest.DCTest(t, "UNIX:"+sock, persistent)
	var clients [4]*tooltest.Client
	for w := range clients {
		clients[w] = &tooltest.Client{Network: "unix", Addr: sock}
		defer clients[w].Close()
	}
	exchange := func(w int, op proto.Op, payload []byte) ([]byte, error) {
		if persistent {
			return clients[w].Do(op, payload)
		}
		return tooltest.Exchange(sock, op, payload)
	}
	ops := tooltest.ReexecUnderLoad(t, p, pidfile, 3, func(w, n int) error {
		i := (w*7919 + n) % stored
		ans, err := exchange(w, proto.OpGet, id(i))
		if err == nil && string(ans) != "session data" {
			err = fmt.Errorf("GET %s answered %x", id(i), ans)
		}
		if err == nil && n%5 == 0 {
			ans, err = exchange(w, proto.OpAdd, proto.AppendAddRequest(nil, 600000, []byte(fmt.Sprintf("during-%d-%d", w, n)), []byte("x")))
			if err == nil && (len(ans) != 1 || ans[0] != 0) {
				err = fmt.Errorf("ADD answered %x", ans)
			}
		}
		return err
	})
	summary := tooltest.StopDCTest(t, load)
	for i := 0; i < stored; i++ {
		if ans, err := tooltest.Exchange(sock, proto.OpGet, id(i)); err != nil || string(ans) != "session data" {
			t.Fatalf("session %d after three re-execs: %x %v", i, ans, err)
		}
	}
	if persistent {
		for w, k := range clients {
			if k.Dials != 1 {
				t.Fatalf("persistent client %d connected %d times", w, k.Dials)
			}
		}
	}
	if proxy != nil && strings.Contains(proxy.Out.String(), "Warning") {
		t.Fatalf("dc_client noticed the re-execs:\n%s", proxy.Out.String())
	}
	t.Logf("%d operations, 0 failed, %d sessions kept over 3 re-execs; dc_test: %s", ops, stored, summary)
}

// A new binary that exits at once: the old process keeps serving and says
// why, once.
func TestUpgradeFailureKeepsServing(t *testing.T) {
	dir := tooltest.TempDir(t)
	bin := filepath.Join(dir, "dc_server")
	b, err := os.ReadFile(tooltest.Bin(t, "dc_server"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := dir + "/s"
	p := tooltest.Start(t, bin, "-listen", "UNIX:"+sock)
	tooltest.WaitDial(t, p, "unix", sock)
	tooltest.Exchange(sock, proto.OpAdd, proto.AppendAddRequest(nil, 600000, []byte("kept"), []byte("data")))
	// An upgrade gone wrong: the new file exits at once.
	if err := os.WriteFile(bin+".new", []byte("#!/bin/sh\necho 'broken build' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	p.Signal(tool.UpgradeSignal)
	p.WaitOutput("re-exec failed, still serving", 30*time.Second)
	if p.Exited() {
		t.Fatal("the old process exited")
	}
	ans, err := tooltest.Exchange(sock, proto.OpGet, []byte("kept"))
	if err != nil || string(ans) != "data" {
		t.Fatalf("after the failed re-exec: %x %v", ans, err)
	}
	if n := strings.Count(p.Out.String(), "re-exec failed"); n != 1 {
		t.Fatalf("%d failure lines", n)
	}
}

// snapshotServer starts dc_server on sock with -snapshot snap and args.
func snapshotServer(t *testing.T, sock, snap string, args ...string) *tooltest.Proc {
	p := tooltest.Start(t, tooltest.Bin(t, "dc_server"), append([]string{"-listen", "UNIX:" + sock, "-snapshot", snap}, args...)...)
	tooltest.WaitDial(t, p, "unix", sock)
	return p
}

// -snapshot: a clean stop writes the sessions, a start reads them back with
// their remaining lifetimes; a file others may read, a damaged file and a
// foreign file are refused, and the server starts empty.
func TestSnapshot(t *testing.T) {
	dir := tooltest.TempDir(t)
	sock, snap := dir+"/s", dir+"/sessions"
	run := func() *tooltest.Proc { return snapshotServer(t, sock, snap) }
	stopClean := func(p *tooltest.Proc) { tooltest.StopClean(t, p) }
	p := run()
	for i := 0; i < 100; i++ {
		tooltest.Exchange(sock, proto.OpAdd, proto.AppendAddRequest(nil, 600000, []byte(fmt.Sprintf("long-%03d", i)), []byte("data")))
	}
	tooltest.Exchange(sock, proto.OpAdd, proto.AppendAddRequest(nil, 1500, []byte("short"), []byte("data")))
	stopClean(p)
	st, err := os.Stat(snap)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v %v", st, err)
	}
	// Let the short one expire while the server is down.
	tooltest.Eventually(t, 5*time.Second, func() bool { return time.Since(st.ModTime()) > 1600*time.Millisecond }, "the short session's lifetime to pass")
	p = run()
	if !strings.Contains(p.Out.String(), "sessions read from") {
		p.WaitOutput("sessions read from", 5*time.Second)
	}
	for i := 0; i < 100; i++ {
		if ans, err := tooltest.Exchange(sock, proto.OpGet, []byte(fmt.Sprintf("long-%03d", i))); err != nil || string(ans) != "data" {
			t.Fatalf("session %d after restart: %x %v", i, ans, err)
		}
	}
	if ans, _ := tooltest.Exchange(sock, proto.OpGet, []byte("short")); string(ans) != "\x01" {
		t.Fatalf("an expired session came back: %x", ans)
	}
	stopClean(p)
	good, _ := os.ReadFile(snap)
	for name, prep := range map[string]func(){
		"readable by others": func() { os.WriteFile(snap, good, 0o600); os.Chmod(snap, 0o644) },
		"damaged": func() {
			b := append([]byte(nil), good...)
			b[len(b)/2] ^= 1
			os.WriteFile(snap, b, 0o600)
			os.Chmod(snap, 0o600)
		},
		"foreign": func() { os.WriteFile(snap, []byte("# a key file\n"), 0o600); os.Chmod(snap, 0o600) },
	} {
		prep()
		p := run()
		p.WaitOutput("starting empty", 5*time.Second)
		if ans, _ := tooltest.Exchange(sock, proto.OpGet, []byte("long-000")); string(ans) != "\x01" {
			t.Fatalf("%s: sessions served from a refused file", name)
		}
		p.Cmd.Process.Kill() // no clean stop: the next case prepares its own file
		p.Wait(10 * time.Second)
	}
}

// -snapshot with -sealkey: the file holds only ciphertext, the same key
// reads it back, and another key, or none, is refused with a line saying
// so and the server starts empty.
func TestSealedSnapshot(t *testing.T) {
	dir := tooltest.TempDir(t)
	sock, snap, k1, k2 := dir+"/s", dir+"/sessions", dir+"/k1", dir+"/k2"
	os.WriteFile(k1, []byte("snap1 "+strings.Repeat("5a", 32)+"\n"), 0o600)
	os.WriteFile(k2, []byte("snap2 "+strings.Repeat("a5", 32)+"\n"), 0o600)
	run := func(args ...string) *tooltest.Proc { return snapshotServer(t, sock, snap, args...) }
	stopClean := func(p *tooltest.Proc) { tooltest.StopClean(t, p) }
	id := func(i int) []byte { return []byte(fmt.Sprintf("sealed-id-%03d", i)) }
	secret := []byte("MASTER-SECRET-of-a-TLS-session")
	p := run("-sealkey", k1)
	for i := 0; i < 50; i++ {
		if ans, err := tooltest.Exchange(sock, proto.OpAdd, proto.AppendAddRequest(nil, 600000, id(i), secret)); err != nil || string(ans) != "\x00" {
			t.Fatalf("ADD %d: %x %v", i, ans, err)
		}
	}
	stopClean(p)
	b, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if !seal.IsStream(b) || bytes.Contains(b, []byte("MASTER-SECRET")) || bytes.Contains(b, []byte("sealed-id-")) {
		t.Fatalf("the snapshot is not only ciphertext (%d bytes)", len(b))
	}
	p = run("-sealkey", k1)
	p.WaitOutput("50 sessions read from", 5*time.Second)
	for i := 0; i < 50; i++ {
		if ans, err := tooltest.Exchange(sock, proto.OpGet, id(i)); err != nil || !bytes.Equal(ans, secret) {
			t.Fatalf("session %d after the sealed restart: %q %v", i, ans, err)
		}
	}
	stopClean(p)
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"-sealkey", k2}, "does not open with the -sealkey keys"},
		{nil, "is sealed and no -sealkey was given"},
	} {
		p := run(c.args...)
		p.WaitOutput(c.says, 5*time.Second)
		p.WaitOutput("starting empty", 5*time.Second)
		if ans, _ := tooltest.Exchange(sock, proto.OpGet, id(0)); string(ans) != "\x01" {
			t.Fatalf("%v: a session served from a refused file", c.args)
		}
		p.Cmd.Process.Kill() // no clean stop: the file stays for the next case
		p.Wait(10 * time.Second)
	}
}

// Re-exec with -metrics: the metrics listener is handed over with the
// others, so the endpoint never refuses a scrape, and the sessions stay.
func TestUpgradeWithMetrics(t *testing.T) {
	dir := tooltest.TempDir(t)
	sock, pidfile := dir+"/s", dir+"/pid"
	maddr := fmt.Sprintf("127.0.0.1:%d", tooltest.FreePort(t))
	p := tooltest.Start(t, tooltest.Bin(t, "dc_server"), "-listen", "UNIX:"+sock, "-pidfile", pidfile, "-metrics", "IP:"+maddr)
	tooltest.WaitDial(t, p, "unix", sock)
	tooltest.WaitDial(t, p, "tcp", maddr)
	tooltest.Exchange(sock, proto.OpAdd, proto.AppendAddRequest(nil, 600000, []byte("kept"), []byte("data")))
	tooltest.ReexecUnderLoad(t, p, pidfile, 2, func(w, _ int) error {
		if w%2 == 0 {
			return tooltest.GetMetrics(maddr)
		}
		return tooltest.ExpectGet(sock, []byte("kept"), "data")
	})
	if strings.Contains(p.Out.String(), "re-exec") && strings.Contains(p.Out.String(), "Error") {
		t.Fatalf("re-exec refused:\n%s", p.Out.String())
	}
}

// A re-exec of a daemon as it runs in production: detached (-daemon),
// switched to another user (-user), with a pid file, under systemd
// (Type=notify; NOTIFY_SOCKET here is the test's, seeing each message's
// sender as systemd does). Each successor rewrites the pid file through
// the descriptor opened before the user switch, runs as the user, and is
// named the main process by its predecessor (MAINPID, sent by the main
// process itself, the only one systemd listens to); it says nothing on
// its own. The sessions survive both re-execs.
func TestUpgradeDaemonUserNotify(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (-user)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	dir := tooltest.TempDir(t)
	os.Chmod(dir, 0o755)
	sock, pidfile := dir+"/s", dir+"/pid"
	notify, msgs := tooltest.NotifySocket(t, dir)
	t.Cleanup(func() {
		if pid := tooltest.ReadPID(pidfile); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	// The successor is started as nobody: the binary must be where
	// nobody may run it (the built one is in a directory of mode 0700).
	bin := dir + "/dc_server"
	b, err := os.ReadFile(tooltest.Bin(t, "dc_server"))
	if err != nil || os.WriteFile(bin, b, 0o755) != nil {
		t.Fatal("cannot copy dc_server")
	}
	p := tooltest.StartEnv(t, []string{"NOTIFY_SOCKET=" + notify}, bin,
		"-daemon", "-user", "nobody", "-pidfile", pidfile, "-listen", "UNIX:"+sock)
	if code := p.Wait(20 * time.Second); code != 0 {
		t.Fatalf("dc_server -daemon: exit %d:\n%s", code, p.Out.String())
	}
	next := func(what string) tooltest.Notification {
		select {
		case m := <-msgs:
			return m
		case <-time.After(30 * time.Second):
			t.Fatalf("no notification: %s", what)
		}
		return tooltest.Notification{}
	}
	pid := tooltest.ReadPID(pidfile)
	if m := next("READY=1"); m.PID != pid || m.State != "READY=1" {
		t.Fatalf("first notification %+v, want READY=1 from %d", m, pid)
	}
	uidOf := func(pid int) string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
				return f[1]
			}
		}
		return "?"
	}
	for i := 0; i < 20; i++ {
		tooltest.Exchange(sock, proto.OpAdd, proto.AppendAddRequest(nil, 600000, []byte(fmt.Sprintf("kept-%d", i)), []byte("data")))
	}
	for round := 1; round <= 2; round++ {
		if uid := uidOf(pid); uid != nobody.Uid {
			t.Fatalf("process %d runs as uid %s, want nobody (%s)", pid, uid, nobody.Uid)
		}
		syscall.Kill(pid, tool.UpgradeSignal)
		tooltest.Eventually(t, 30*time.Second, func() bool { n := tooltest.ReadPID(pidfile); return n > 0 && n != pid },
			"re-exec %d: a new pid in the pid file", round)
		succ := tooltest.ReadPID(pidfile)
		want := fmt.Sprintf("MAINPID=%d\nREADY=1", succ)
		if m := next("MAINPID"); m.PID != pid || m.State != want {
			t.Fatalf("re-exec %d: notification %+v, want %q from %d (the main process)", round, m, want, pid)
		}
		tooltest.Eventually(t, 30*time.Second, func() bool { return tooltest.Gone(pid) }, "process %d to exit", pid)
		pid = succ
	}
	if uid := uidOf(pid); uid != nobody.Uid {
		t.Fatalf("the last successor runs as uid %s", uid)
	}
	for i := 0; i < 20; i++ {
		if ans, err := tooltest.Exchange(sock, proto.OpGet, []byte(fmt.Sprintf("kept-%d", i))); err != nil || string(ans) != "data" {
			t.Fatalf("session %d after two re-execs: %q %v", i, ans, err)
		}
	}
	select {
	case m := <-msgs:
		t.Fatalf("an extra notification: %+v", m)
	default:
	}
}
