// SPDX-License-Identifier: Apache-2.0

package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// taskTotals sums, over the threads of process pid, the time run (ns,
// from schedstat) and the voluntary context switches.
func taskTotals(b *testing.B, pid int) (run time.Duration, vcsw int64) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		if s, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat")); err == nil {
			if f := strings.Fields(string(s)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				run += time.Duration(ns)
			}
		}
		if s, err := os.ReadFile(filepath.Join(dir, e.Name(), "status")); err == nil {
			for _, line := range strings.Split(string(s), "\n") {
				if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					vcsw += n
				}
			}
		}
	}
	return run, vcsw
}

// BenchmarkSpacedGets is Apache's pattern through the real dc_client: one
// kept connection, one GET at a time, and 300 µs of work (busy, as a
// handshake is) between two GETs, so that dc_client is idle when each
// request comes. It reports dc_client's CPU time and voluntary context
// switches (thread wake-ups) per GET, from /proc; dc_server is on a unix
// socket or on TCP loopback (port 46110).
func BenchmarkSpacedGets(b *testing.B) {
	for _, up := range []string{"unix", "tcp"} {
		b.Run("upstream="+up, func(b *testing.B) {
			dir := tooltest.TempDir(b)
			addr, network, where := "UNIX:"+dir+"/srv", "unix", dir+"/srv"
			if up == "tcp" {
				addr, network, where = "IP:127.0.0.1:46110", "tcp", "127.0.0.1:46110"
			}
			srv := tooltest.Start(b, tooltest.Bin(b, "dc_server"), "-listen", addr)
			tooltest.WaitDial(b, srv, network, where)
			cli := tooltest.Start(b, tooltest.Bin(b, "dc_client"), "-listen", "UNIX:"+dir+"/cli", "-server", addr)
			tooltest.WaitDial(b, cli, "unix", dir+"/cli")
			cli.WaitOutput("connected to the server", 10*time.Second)
			c, err := net.Dial("unix", dir+"/cli")
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			rd := proto.NewReader(c, proto.WantResponses)
			id := []byte("spaced-session-id")
			if m := tooltest.RoundTrip(b, c, 1, proto.OpAdd, tooltest.AddPayload(600000, id, make([]byte, 200))); len(m.Payload) != 1 || m.Payload[0] != 0 {
				b.Fatalf("ADD: %x", m.Payload)
			}
			get := tooltest.Request(2, proto.OpGet, id)
			one := func() {
				if _, err := c.Write(get); err != nil {
					b.Fatal(err)
				}
				if m, err := rd.ReadMessage(); err != nil || len(m.Payload) != 200 {
					b.Fatalf("GET: %v", err)
				}
				for end := time.Now().Add(300 * time.Microsecond); time.Now().Before(end); {
				}
			}
			for i := 0; i < 10; i++ {
				one() // past the connection's first requests
			}
			pid := cli.Cmd.Process.Pid
			run0, cs0 := taskTotals(b, pid)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				one()
			}
			b.StopTimer()
			run1, cs1 := taskTotals(b, pid)
			b.ReportMetric(float64((run1-run0).Nanoseconds())/float64(b.N), "dc_client-cpu-ns/op")
			b.ReportMetric(float64(cs1-cs0)/float64(b.N), "dc_client-vcsw/op")
		})
	}
}
