// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// Three re-execs of dc_client under load, with a connection per operation
// and with persistent connections: no request fails, no connection is
// refused, a persistent connection is the same one from start to end, and
// dc_test running alongside sees nothing wrong.
func TestUpgradeUnderLoad(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		name := "per-operation"
		if persistent {
			name = "persistent"
		}
		t.Run(name, func(t *testing.T) { upgradeUnderLoad(t, persistent) })
	}
}

func upgradeUnderLoad(t *testing.T, persistent bool) {
	dir := tooltest.TempDir(t)
	srvSock, sock, pidfile := dir+"/srv", dir+"/s", dir+"/pid"
	srv := tooltest.Start(t, tooltest.Bin(t, "dc_server"), "-listen", "UNIX:"+srvSock)
	tooltest.WaitDial(t, srv, "unix", srvSock)
	// -reqtimeout: on a loaded test machine an answer may take over the
	// default 100 ms stall bound, which is not what this tests.
	p := tooltest.Start(t, tooltest.Bin(t, "dc_client"), "-listen", "UNIX:"+sock, "-server", "UNIX:"+srvSock, "-pidfile", pidfile, "-reqtimeout", "5000")
	tooltest.WaitDial(t, p, "unix", sock)
	tooltest.Eventually(t, 10*time.Second, func() bool {
		ans, err := tooltest.Exchange(sock, proto.OpAdd, proto.AppendAddRequest(nil, 600000, []byte("kept"), []byte("data")))
		return err == nil && len(ans) == 1 && ans[0] == 0
	}, "dc_client to reach its server")
	load := tooltest.DCTest(t, "UNIX:"+sock, persistent)
	var clients [4]*tooltest.Client
	for w := range clients {
		clients[w] = &tooltest.Client{Network: "unix", Addr: sock}
		defer clients[w].Close()
	}
	ops := tooltest.ReexecUnderLoad(t, p, pidfile, 3, func(w, _ int) error {
		var ans []byte
		var err error
		if persistent {
			ans, err = clients[w].Do(proto.OpGet, []byte("kept"))
		} else {
			ans, err = tooltest.Exchange(sock, proto.OpGet, []byte("kept"))
		}
		if err == nil && string(ans) != "data" {
			err = fmt.Errorf("GET answered %x", ans)
		}
		return err
	})
	summary := tooltest.StopDCTest(t, load)
	if persistent {
		for w, k := range clients {
			if k.Dials != 1 {
				t.Fatalf("persistent client %d connected %d times", w, k.Dials)
			}
		}
	}
	if strings.Contains(srv.Out.String(), "Warning") {
		t.Fatalf("dc_server logged:\n%s", srv.Out.String())
	}
	t.Logf("%d operations through dc_client, 0 failed, over 3 re-execs; dc_test: %s", ops, summary)
}

// Re-exec with -metrics: the metrics listener is handed over too.
func TestUpgradeWithMetrics(t *testing.T) {
	dir := tooltest.TempDir(t)
	srvSock, sock, pidfile := dir+"/srv", dir+"/s", dir+"/pid"
	srv := tooltest.Start(t, tooltest.Bin(t, "dc_server"), "-listen", "UNIX:"+srvSock)
	tooltest.WaitDial(t, srv, "unix", srvSock)
	maddr := fmt.Sprintf("127.0.0.1:%d", tooltest.FreePort(t))
	p := tooltest.Start(t, tooltest.Bin(t, "dc_client"), "-listen", "UNIX:"+sock, "-server", "UNIX:"+srvSock, "-pidfile", pidfile, "-metrics", "IP:"+maddr, "-reqtimeout", "5000")
	tooltest.WaitDial(t, p, "tcp", maddr)
	tooltest.Eventually(t, 10*time.Second, func() bool {
		ans, err := tooltest.Exchange(sock, proto.OpAdd, proto.AppendAddRequest(nil, 600000, []byte("kept"), []byte("data")))
		return err == nil && len(ans) == 1 && ans[0] == 0
	}, "dc_client to reach its server")
	tooltest.ReexecUnderLoad(t, p, pidfile, 2, func(w, _ int) error {
		if w%2 == 0 {
			return tooltest.GetMetrics(maddr)
		}
		return tooltest.ExpectGet(sock, []byte("kept"), "data")
	})
}
