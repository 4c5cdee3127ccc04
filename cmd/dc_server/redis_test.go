// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/redisstore/redistest"
)

// The table of distcache rules, first against the in-memory cache, then
// with -backend Redis: the same expectations.
func TestRulesInMemory(t *testing.T) {
	_, sock := start(t)
	tooltest.Rules(t, "unix", sock, 300*time.Second)
}

func TestRedisBackendRules(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	_, sock := start(t, "-backend", "redis://"+srv.Addr(), "-redistimeout", "2000", "-redisprefix", "farm1:")
	tooltest.Rules(t, "unix", sock, 300*time.Second)
	_, sock0 := start(t, "-backend", "redis://"+srv.Addr(), "-redistimeout", "2000", "-minlifetime", "0")
	tooltest.Rules(t, "unix", sock0, 0)
	for _, prefix := range []string{"farm1:", "dc:"} {
		if keys, err := srv.Do("KEYS", prefix+"*"); err != nil || keys == "" {
			t.Errorf("no Redis keys under %s (%v)", prefix, err)
		}
	}
}

// Two dc_servers on one Redis share their sessions.
func TestRedisBackendShared(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	_, a := start(t, "-backend", "redis://"+srv.Addr(), "-redistimeout", "2000")
	_, b := start(t, "-backend", "redis://"+srv.Addr(), "-redistimeout", "2000")
	ca, cb := tooltest.Dial(t, "unix", a), tooltest.Dial(t, "unix", b)
	id := []byte("shared-" + time.Now().Format("150405.000000"))
	if m := tooltest.RoundTrip(t, ca, 1, proto.OpAdd, tooltest.AddPayload(60000, id, []byte("from a"))); !bytes.Equal(m.Payload, []byte{0}) {
		t.Fatalf("ADD on a: %x", m.Payload)
	}
	if m := tooltest.RoundTrip(t, cb, 1, proto.OpGet, id); string(m.Payload) != "from a" {
		t.Fatalf("GET on b: %q", m.Payload)
	}
	if m := tooltest.RoundTrip(t, cb, 2, proto.OpAdd, tooltest.AddPayload(60000, id, []byte("from b"))); !bytes.Equal(m.Payload, []byte{proto.AddErrMatching}) {
		t.Fatalf("duplicate ADD on b: %x", m.Payload)
	}
}

// With Redis down, dc_server answers misses and failed adds at once, and
// uses Redis again when it is back.
func TestRedisBackendDown(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	_, sock := start(t, "-backend", "redis://"+srv.Addr(), "-redistimeout", "50")
	c := tooltest.Dial(t, "unix", sock)
	stall, stop := redistest.StallWatch()
	defer stop()
	srv.Kill()
	start := time.Now()
	if m := tooltest.RoundTrip(t, c, 1, proto.OpAdd, tooltest.AddPayload(60000, []byte("k"), []byte("d"))); !bytes.Equal(m.Payload, []byte{proto.AddErrMatching}) {
		t.Errorf("ADD with Redis down: %x, want 65", m.Payload)
	}
	if m := tooltest.RoundTrip(t, c, 2, proto.OpGet, []byte("k")); !bytes.Equal(m.Payload, []byte{proto.ResultNotOK}) {
		t.Errorf("GET with Redis down: %x, want 01", m.Payload)
	}
	if took := time.Since(start); took > 500*time.Millisecond+stall() {
		t.Errorf("two requests with Redis down took %v (the test process stalled up to %v)", took, stall())
	}
	srv.Restart(t)
	// A fresh id each time: an ADD that missed its deadline may still
	// have been stored.
	try := 0
	tooltest.Eventually(t, 10*time.Second, func() bool {
		try++
		id := []byte(fmt.Sprintf("back-%d", try))
		return bytes.Equal(tooltest.RoundTrip(t, c, 3, proto.OpAdd, tooltest.AddPayload(60000, id, []byte("d"))).Payload, []byte{0})
	}, "ADD works again after Redis is back")
}

func TestBackendErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-backend", "IP:127.0.0.1:9"}, "-backend"},
		{[]string{"-backend", "redis://u:pw@127.0.0.1:1"}, "visible to every user"},
		{[]string{"-backend", "redis://127.0.0.1:1", "-redispassfile", "/nonexistent"}, "-redispassfile"},
	} {
		sock := tooltest.TempDir(t) + "/s"
		code, out := tooltest.Run(t, 10*time.Second, tooltest.Bin(t, "dc_server"), append(c.args, "-listen", "UNIX:"+sock)...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, output %q; want an error mentioning %q", c.args, code, out, c.want)
		}
	}
}
