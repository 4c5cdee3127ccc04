// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/dcserver"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/internal/daemontest"
)

// The operations the original dc_test did before its own check failed
// are read from its last lines; a round is measured over them.
func TestSucceededBefore(t *testing.T) {
	for _, c := range []struct {
		out  string
		want int
	}{
		{"Info, 10 sessions generated, will run 50000 random tests\nError, received mismatched session\nInfo, 1137 tests succeeded before the first failure\n", 1137},
		{"Error, transaction failure\nInfo, 2 tests succeeded before the first failure", 2},
		{"Info, all tests complete\n", 0},
	} {
		if got := succeededBefore([]byte(c.out)); got != c.want {
			t.Errorf("succeededBefore(%q) = %d, want %d", c.out, got, c.want)
		}
	}
}

// What the table's note says names the server each count belongs to.
func TestCheckNote(t *testing.T) {
	got := checkNote([2]clientChecks{{partial: 1}, {partial: 2, rerun: 3}})
	want := "against ours 1 round(s) measured over the operations before it, 0 run again; " +
		"against the original 2 round(s) measured over the operations before it, 3 run again"
	if got != want {
		t.Fatalf("checkNote: %q\nwant %q", got, want)
	}
	if checkNote([2]clientChecks{}) != "" || (clientChecks{}).any() {
		t.Fatal("a note without any failed check")
	}
}

// serveCache runs a dc_server loop over a fresh cache on a unix socket
// until the test ends, and returns the socket's path.
func serveCache(t *testing.T) string {
	t.Helper()
	sock := t.TempDir() + "/s"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := dcserver.New(dcserver.Options{Store: cache.New(cache.Config{}).Store(), Info: io.Discard})
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() { srv.Shutdown(ln); <-done })
	return sock
}

// The spaced load reads its session back from a real dc_server, on one
// connection and on a connection per GET, and counts only the measured
// GETs (after the warm-up it reports with begin).
func TestSpacedLoad(t *testing.T) {
	sock := serveCache(t)
	for _, perConn := range []bool{false, true} {
		began := 0
		lat, err := spacedLoad("UNIX:"+sock, "UNIX:"+sock, bcase{ops: 7, gap: 100 * time.Microsecond, perConn: perConn}, false, func() { began++ })
		if err != nil {
			t.Fatalf("perConn %v: %v", perConn, err)
		}
		if len(lat) != 7 || began != 1 {
			t.Fatalf("perConn %v: %d round trips, begin called %d times; want 7 and 1", perConn, len(lat), began)
		}
		for _, d := range lat {
			if d <= 0 {
				t.Fatalf("perConn %v: round trip %v", perConn, d)
			}
		}
	}
	// Another host's session: added at the second address, read at the
	// first, which (another cache here) does not have it.
	other := serveCache(t)
	if _, err := spacedLoad("UNIX:"+sock, "UNIX:"+other, bcase{ops: 3, gap: time.Microsecond, elsewhere: true}, false, func() {}); err == nil || !strings.Contains(err.Error(), "GET 0 answered 1 bytes") {
		t.Fatalf("a session added at another address was read here: %v", err)
	}
}

// The spaced measure splits dc_client's share out of the daemons' CPU
// and wake-ups: here the "server" is the test process, which serves the
// load, and the "proxy" a sleep that does nothing meanwhile.
func TestMeasureSpacedSplitsTheProxy(t *testing.T) {
	sock := serveCache(t)
	idle := exec.Command("sleep", "60")
	if err := idle.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { idle.Process.Kill(); idle.Wait() }()
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	res, err := measureSpaced("UNIX:"+sock, "UNIX:"+sock, bcase{ops: 200, gap: 50 * time.Microsecond, viaProxy: true}, false,
		&exec.Cmd{Process: self}, idle)
	if err != nil {
		t.Fatal(err)
	}
	if res.cpuPerOp <= 0 || res.proxyCPU < 0 || res.proxyCPU >= res.cpuPerOp || res.proxyWake > res.wakePerOp {
		t.Fatalf("CPU per op %v, of it the proxy's %v; wake-ups %.2f, the proxy's %.2f", res.cpuPerOp, res.proxyCPU, res.wakePerOp, res.proxyWake)
	}
	if got := proxyColumns(bcase{}, res, res); got != "" {
		t.Fatalf("straight to dc_server, proxy columns %q", got)
	}
	us, or := result{proxyCPU: 30 * time.Microsecond, proxyWake: 2.5}, result{proxyCPU: 20 * time.Microsecond, proxyWake: 2}
	if got := strings.Fields(proxyColumns(bcase{viaProxy: true}, us, or)); strings.Join(got, " ") != "30µs 20µs 1.50 2.5 2.0" {
		t.Fatalf("proxy columns %q", got)
	}
}

// A server that answers a GET with anything but the session stored fails
// the spaced load, which names the GET.
func TestSpacedLoadChecksTheAnswer(t *testing.T) {
	sock := t.TempDir() + "/s"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		rd := proto.NewReader(nc, proto.WantRequests)
		for {
			m, err := rd.ReadMessage()
			if err != nil {
				return
			}
			out, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: []byte{proto.ResultOK}})
			nc.Write(out) // OK to the ADD, and a 1-byte "session" to the GET
		}
	}()
	_, err = spacedLoad("UNIX:"+sock, "UNIX:"+sock, bcase{ops: 3, gap: time.Microsecond}, false, func() {})
	if err == nil || !strings.Contains(err.Error(), "GET 0 answered 1 bytes") {
		t.Fatalf("spaced load against a wrong answer: %v", err)
	}
}

// The spaced cases' names keep -only persistent and -only connection to
// the tight-loop cases, and -only spaced to them; -gaps is checked.
func TestSpacedCases(t *testing.T) {
	gs, err := parseGaps("500us, 2ms")
	if err != nil || len(gs) != 2 || gs[0] != 500*time.Microsecond || gs[1] != 2*time.Millisecond {
		t.Fatalf("parseGaps: %v %v", gs, err)
	}
	for _, bad := range []string{"2", "-1ms", "5s"} {
		if _, err := parseGaps(bad); err == nil {
			t.Errorf("parseGaps(%q) took it", bad)
		}
	}
	cs := spacedCases(gs)
	if len(cs) != 10 || cs[0].name != "spaced 500us, unix, kept conn" || cs[8].name != "spaced 2ms, via dc_client, conn per op" ||
		cs[9].name != "spaced 2ms, via dc_client, another host's session" || !cs[9].elsewhere || !cs[9].viaProxy {
		t.Fatalf("spaced cases: %+v", cs)
	}
	for _, c := range cs {
		if strings.Contains(c.name, "persistent") || strings.Contains(c.name, "connection") || !strings.Contains(c.name, "spaced") {
			t.Errorf("case %q", c.name)
		}
		if c.ops < 500 {
			t.Errorf("case %q: %d GETs, too few for a p99", c.name, c.ops)
		}
	}
	ds := []time.Duration{5, 1, 4, 2, 3}
	if percentile(ds, 50) != 3 || percentile(ds, 99) != 5 || percentile(ds, 0) != 1 {
		t.Fatalf("percentile of %v", ds)
	}
}

// A load that hangs is killed at its limit; one that ends is not.
func TestRunLoadKillsAHungLoad(t *testing.T) {
	out, killed, err := runLoad(exec.Command("sh", "-c", "echo started; exec sleep 60"), 200*time.Millisecond)
	if !killed || err == nil || !strings.Contains(string(out), "started") {
		t.Fatalf("hung load: killed %v, err %v, output %q", killed, err, out)
	}
	out, killed, err = runLoad(exec.Command("sh", "-c", "echo done"), time.Minute)
	if killed || err != nil || string(out) != "done\n" {
		t.Fatalf("finished load: killed %v, err %v, output %q", killed, err, out)
	}
}

// Our dc_client runs here with oursProxyArgs, so a GET whose answer from
// the server is late on a loaded machine (here 400 ms, past dc_client's
// default -reqtimeout of 100 ms) gets the session, as through the
// original's proxy, instead of the miss the proxy answers at its timeout,
// which ended a spaced round.
func TestOurProxyWaitsForALateAnswer(t *testing.T) {
	dir := t.TempDir()
	up := dir + "/up"
	ln, err := net.Listen("unix", up)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				rd := proto.NewReader(nc, proto.WantRequests)
				gets := 0
				for {
					m, err := rd.ReadMessage()
					if err != nil {
						return
					}
					ans := []byte{proto.ResultOK}
					if m.Op == proto.OpGet {
						if gets++; gets == 3 {
							time.Sleep(400 * time.Millisecond) // the late answer
						}
						ans = spacedData
					}
					out, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: ans})
					if _, err := nc.Write(out); err != nil {
						return
					}
				}
			}()
		}
	}()
	im := impl{name: "ours", proxy: daemontest.Bin(t, "dc_client"), proxyArgs: oursProxyArgs}
	argv := proxyCommand(im, "UNIX:"+dir+"/cli", "UNIX:"+up)
	var out bytes.Buffer
	proxy := exec.Command(argv[0], argv[1:]...)
	proxy.Stdout, proxy.Stderr = &out, &out
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		proxy.Process.Kill()
		proxy.Wait()
		if t.Failed() {
			t.Logf("dc_client's output:\n%s", out.String())
		}
	}()
	if err := waitListening("UNIX:" + dir + "/cli"); err != nil {
		t.Fatal(err)
	}
	if _, err := spacedLoad("UNIX:"+dir+"/cli", "UNIX:"+dir+"/cli", bcase{ops: 5, gap: 100 * time.Microsecond}, false, func() {}); err != nil {
		t.Fatalf("through dc_client %v: %v", argv[1:], err)
	}
}

// lineWatch finds its string split across writes, and not a string that
// never came.
func TestLineWatch(t *testing.T) {
	w := newLineWatch(nearOn)
	for _, s := range []string{"Info, connected\nInfo, subscribed ...: the near ", "cache is", " on\n", "more\n"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if err := w.wait(time.Second); err != nil {
		t.Fatal(err)
	}
	w = newLineWatch(nearOn)
	w.Write([]byte("Info, connected\nthe near cache is off\n"))
	if err := w.wait(10 * time.Millisecond); err == nil {
		t.Fatal("found a string that never came")
	}
}
