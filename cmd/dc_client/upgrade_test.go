// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// Three re-execs of dc_client under a load of a connection per operation:
// no request fails and no connection is refused.
func TestUpgradeUnderLoad(t *testing.T) {
	dir := tooltest.TempDir(t)
	srvSock, sock, pidfile := dir+"/srv", dir+"/s", dir+"/pid"
	srv := tooltest.Start(t, tooltest.Bin(t, "dc_server"), "-listen", "UNIX:"+srvSock)
	tooltest.WaitDial(t, srv, "unix", srvSock)
	p := tooltest.Start(t, tooltest.Bin(t, "dc_client"), "-listen", "UNIX:"+sock, "-server", "UNIX:"+srvSock, "-pidfile", pidfile)
	tooltest.WaitDial(t, p, "unix", sock)
	tooltest.Eventually(t, 10*time.Second, func() bool {
		ans, err := tooltest.Exchange(sock, proto.OpAdd, proto.AppendAddRequest(nil, 600000, []byte("kept"), []byte("data")))
		return err == nil && len(ans) == 1 && ans[0] == 0
	}, "dc_client to reach its server")
	ops := tooltest.ReexecUnderLoad(t, p, pidfile, 3, func(int, int) error {
		ans, err := tooltest.Exchange(sock, proto.OpGet, []byte("kept"))
		if err == nil && string(ans) != "data" {
			err = fmt.Errorf("GET answered %x", ans)
		}
		return err
	})
	t.Logf("%d operations through dc_client, 0 failed, over 3 re-execs", ops)
}
