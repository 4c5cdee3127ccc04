package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tool"
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
	t.Cleanup(func() {
		if pid := tooltest.ReadPID(pidfile); pid > 0 && pid != p.Cmd.Process.Pid {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	tooltest.Eventually(t, 10*time.Second, func() bool {
		ans, err := tooltest.Exchange(sock, proto.OpAdd, proto.AppendAddRequest(nil, 600000, []byte("kept"), []byte("data")))
		return err == nil && len(ans) == 1 && ans[0] == 0
	}, "dc_client to reach its server")
	var ops, failed atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ans, err := tooltest.Exchange(sock, proto.OpGet, []byte("kept"))
				if err == nil && string(ans) != "data" {
					err = fmt.Errorf("GET answered %x", ans)
				}
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
		}()
	}
	pid := p.Cmd.Process.Pid
	for round := 1; round <= 3; round++ {
		before := ops.Load()
		tooltest.Eventually(t, 10*time.Second, func() bool { return ops.Load() > before+50 }, "load before re-exec %d", round)
		syscall.Kill(pid, tool.UpgradeSignal)
		tooltest.Eventually(t, 30*time.Second, func() bool {
			n := tooltest.ReadPID(pidfile)
			return n > 0 && n != pid
		}, "a new pid in the pid file after re-exec %d", round)
		old := pid
		pid = tooltest.ReadPID(pidfile)
		tooltest.Eventually(t, 30*time.Second, func() bool { return tooltest.Gone(old) }, "process %d to exit", old)
	}
	before := ops.Load()
	tooltest.Eventually(t, 10*time.Second, func() bool { return ops.Load() > before+50 }, "load after the last re-exec")
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d operations failed, first: %v", n, ops.Load(), firstErr)
	}
	t.Logf("%d operations through dc_client, 0 failed, over 3 re-execs", ops.Load())
}
