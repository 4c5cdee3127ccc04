// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tool"
	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// Three re-execs under a load of a connection per operation: no request
// fails, no connection is refused, and every session stored before the
// first is still there after the last.
func TestUpgradeUnderLoad(t *testing.T) {
	dir := tooltest.TempDir(t)
	sock, pidfile := dir+"/s", dir+"/pid"
	p := tooltest.Start(t, tooltest.Bin(t, "dc_server"), "-listen", "UNIX:"+sock, "-pidfile", pidfile)
	tooltest.WaitDial(t, p, "unix", sock)
	const stored = 300
	id := func(i int) []byte { return []byte(fmt.Sprintf("before-%04d", i)) }
	for i := 0; i < stored; i++ {
		ans, err := tooltest.Exchange(sock, proto.OpAdd, proto.AppendAddRequest(nil, 600000, id(i), []byte("session data")))
		if err != nil || len(ans) != 1 || ans[0] != 0 {
			t.Fatalf("ADD %d: %x %v", i, ans, err)
		}
	}
	ops := tooltest.ReexecUnderLoad(t, p, pidfile, 3, func(w, n int) error {
		i := (w*7919 + n) % stored
		ans, err := tooltest.Exchange(sock, proto.OpGet, id(i))
		if err == nil && string(ans) != "session data" {
			err = fmt.Errorf("GET %s answered %x", id(i), ans)
		}
		if err == nil && n%5 == 0 {
			ans, err = tooltest.Exchange(sock, proto.OpAdd, proto.AppendAddRequest(nil, 600000, []byte(fmt.Sprintf("during-%d-%d", w, n)), []byte("x")))
			if err == nil && (len(ans) != 1 || ans[0] != 0) {
				err = fmt.Errorf("ADD answered %x", ans)
			}
		}
		return err
	})
	for i := 0; i < stored; i++ {
		if ans, err := tooltest.Exchange(sock, proto.OpGet, id(i)); err != nil || string(ans) != "session data" {
			t.Fatalf("session %d after three re-execs: %x %v", i, ans, err)
		}
	}
	t.Logf("%d operations, 0 failed, %d sessions kept over 3 re-execs", ops, stored)
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

// -snapshot: a clean stop writes the sessions, a start reads them back with
// their remaining lifetimes; a file others may read, a damaged file and a
// foreign file are refused, and the server starts empty.
func TestSnapshot(t *testing.T) {
	dir := tooltest.TempDir(t)
	sock, snap := dir+"/s", dir+"/sessions"
	run := func() *tooltest.Proc {
		p := tooltest.Start(t, tooltest.Bin(t, "dc_server"), "-listen", "UNIX:"+sock, "-snapshot", snap)
		tooltest.WaitDial(t, p, "unix", sock)
		return p
	}
	stopClean := func(p *tooltest.Proc) {
		p.Signal(syscall.SIGTERM)
		if code := p.Wait(20 * time.Second); code != 0 {
			t.Fatalf("exit %d:\n%s", code, p.Out.String())
		}
	}
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
