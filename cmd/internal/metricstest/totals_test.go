// SPDX-License-Identifier: Apache-2.0

package metricstest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/client"
)

// knownLoad sends a load whose every answer is known through addr and
// returns the requests_total and histogram counts it must produce.
func knownLoad(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	c, err := client.Dial(t.Context(), addr, clientOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	id := func(i int) []byte { return []byte(fmt.Sprintf("known-session-%03d", i)) }
	data := bytes.Repeat([]byte("d"), 300)
	for i := range 40 {
		if err := c.Add(ctx, id(i), data, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if err := c.Add(ctx, id(i), data, time.Hour); err == nil {
			t.Fatal("a duplicate ADD was stored")
		}
	}
	for i := range 60 {
		_, err := c.Get(ctx, id(i))
		if (i < 40) != (err == nil) {
			t.Fatalf("GET %d: %v", i, err)
		}
	}
	for i := range 45 {
		if ok, err := c.Has(ctx, id(i)); err != nil || ok != (i < 40) {
			t.Fatalf("HAVE %d: %v %v", i, ok, err)
		}
	}
	for i := range 20 {
		err := c.Remove(ctx, id(i%10))
		if (i < 10) != (err == nil) {
			t.Fatalf("REMOVE %d: %v", i, err)
		}
	}
	return map[string]float64{
		req("add", "stored"): 40, req("add", "duplicate"): 10, req("add", "error"): 0,
		req("get", "hit"): 40, req("get", "miss"): 20, req("get", "error"): 0,
		req("have", "hit"): 40, req("have", "miss"): 5,
		req("remove", "hit"): 10, req("remove", "miss"): 10,
		durCount("add"): 50, durCount("get"): 60, durCount("have"): 45, durCount("remove"): 20,
	}
}

// TestExactTotals: what a known load and a dc_test run did is exactly what
// both daemons count, and every request is in its histogram.
func TestExactTotals(t *testing.T) {
	p := startPair(t)
	want := knownLoad(t, p.cliSock)
	srv, cli := scrape(t, p.srvURL), scrape(t, p.cliURL)
	check(t, "dc_client", cli, want)
	check(t, "dc_server", srv, want)
	check(t, "dc_server", srv, map[string]float64{
		"distcache_cache_sessions":                            30,
		`distcache_cache_removed_total{reason="removed"}`:     10,
		`distcache_cache_removed_total{reason="evicted"}`:     0,
		"distcache_session_age_at_hit_seconds_count":          40,
		"distcache_cache_sessions_limit":                      100000,
		"distcache_connections_open":                          1, // dc_client's upstream connection
		"distcache_connections_accepted_total":                2, // and startPair's probe
		`distcache_connections_closed_total{reason="client"}`: 1,
	})
	check(t, "dc_client", cli, map[string]float64{
		`distcache_upstream_up{server="` + p.srvSock + `"}`:                         1,
		`distcache_upstream_reconnects_total{server="` + p.srvSock + `"}`:           0,
		`distcache_upstream_errors_total{kind="closed",server="` + p.srvSock + `"}`: 0,
		"distcache_upstream_requests_in_flight":                                     0,
	})
	if srv["distcache_received_bytes_total"] == 0 || cli["distcache_sent_bytes_total"] == 0 {
		t.Error("no bytes counted")
	}

	// dc_test: one connection per operation to dc_client, forwarded on
	// its one upstream connection.
	const ops = 3000
	code, out := tooltest.Run(t, 2*time.Minute, tooltest.Bin(t, "dc_test"), "-connect", p.cliSock,
		"-ops", fmt.Sprint(ops), "-clients", "3")
	if code != 0 || !strings.Contains(out, "all tests complete") {
		t.Fatalf("dc_test: exit %d\n%s", code, out)
	}
	srv2, cli2 := scrape(t, p.srvURL), scrape(t, p.cliURL)
	for who, s := range map[string][2]map[string]float64{"dc_server": {srv, srv2}, "dc_client": {cli, cli2}} {
		before, after := s[0], s[1]
		if d := sum(after, "distcache_requests_total{") - sum(before, "distcache_requests_total{"); d != ops {
			t.Errorf("%s: dc_test did %d operations, requests_total grew by %v", who, ops, d)
		}
		if d := sum(after, "distcache_request_duration_seconds_count{") - sum(before, "distcache_request_duration_seconds_count{"); d != ops {
			t.Errorf("%s: dc_test did %d operations, the duration histograms grew by %v", who, ops, d)
		}
		for _, op := range []string{"add", "get", "remove", "have"} {
			n := sum(after, `distcache_requests_total{op="`+op+`"`)
			if h := after[durCount(op)]; h != n {
				t.Errorf("%s: %s: %v requests, %v in the histogram", who, op, n, h)
			}
			if inf := after[fmt.Sprintf(`distcache_request_duration_seconds_bucket{le="+Inf",op=%q}`, op)]; inf != n {
				t.Errorf("%s: %s: +Inf bucket %v, want %v", who, op, inf, n)
			}
		}
	}
	for k := range cli2 {
		if strings.HasPrefix(k, "distcache_requests_total{") && cli2[k] != srv2[k] {
			t.Errorf("%s: dc_client %v, dc_server %v (every request is forwarded)", k, cli2[k], srv2[k])
		}
	}
	if d := cli2["distcache_connections_accepted_total"] - cli["distcache_connections_accepted_total"]; d != ops {
		t.Errorf("dc_client accepted %v connections during dc_test, want %d (one per operation)", d, ops)
	}
	tooltest.Eventually(t, 5*time.Second, func() bool {
		return scrape(t, p.cliURL)[`distcache_connections_closed_total{reason="client"}`] == cli2["distcache_connections_accepted_total"]
	}, "every local connection to be counted closed by the client")

	// The signal prints the counters once.
	p.srv.Signal(syscall.SIGWINCH)
	p.srv.WaitOutput(fmt.Sprintf("Info, metric %s %v\n", req("get", "hit"), srv2[req("get", "hit")]), 5*time.Second)
	for _, bin := range []string{"promtool"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not installed (Debian package prometheus, .ci/packages.d/metrics.txt)", bin)
		}
	}
	for who, url := range map[string]string{"dc_server": p.srvURL, "dc_client": p.cliURL} {
		cmd := exec.Command("promtool", "check", "metrics")
		cmd.Stdin = bytes.NewReader(fetch(t, url+"/metrics"))
		if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("%s: promtool check metrics: %v\n%s", who, err, out)
		}
	}
}

// TestUpstreamDownAndBack: dc_client counts its server going away, the
// failed connection attempts, and the reconnection.
func TestUpstreamDownAndBack(t *testing.T) {
	p := startPair(t)
	up := `distcache_upstream_up{server="` + p.srvSock + `"}`
	p.srv.Signal(syscall.SIGTERM)
	p.srv.Wait(10 * time.Second)
	tooltest.Eventually(t, 10*time.Second, func() bool {
		s := scrape(t, p.cliURL)
		return s[up] == 0 && s[`distcache_upstream_errors_total{kind="closed",server="`+p.srvSock+`"}`] == 1
	}, "the upstream to be down, its loss counted as closed")
	c, err := client.Dial(t.Context(), p.cliSock, clientOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(context.Background(), []byte("x")); err == nil || errors.Is(err, client.ErrNotFound) {
		t.Errorf("GET with no server: %v, want a failure", err)
	}
	if g := scrape(t, p.cliURL)[req("get", "error")]; g != 1 {
		t.Errorf("GET with no server counted %v errors, want 1", g)
	}
	srv := tooltest.Start(t, tooltest.Bin(t, "dc_server"), "-listen", p.srvSock)
	tooltest.WaitDial(t, srv, "unix", strings.TrimPrefix(p.srvSock, "UNIX:"))
	tooltest.Eventually(t, 15*time.Second, func() bool {
		s := scrape(t, p.cliURL)
		return s[up] == 1 && s[`distcache_upstream_reconnects_total{server="`+p.srvSock+`"}`] == 1
	}, "the upstream to be up again after one reconnection")
}

// TestMetricsAddressRefused: a non-loopback -metrics address is refused
// unless -metricspublic; a bad one is a usage error.
func TestMetricsAddressRefused(t *testing.T) {
	dir := tooltest.TempDir(t)
	bin := tooltest.Bin(t, "dc_server")
	port := fmt.Sprint(tooltest.FreePort(t))
	code, out := tooltest.Run(t, 10*time.Second, bin, "-listen", "UNIX:"+dir+"/a", "-metrics", "IP:"+port)
	if code != 1 || !strings.Contains(out, "not a loopback address") || !strings.Contains(out, "-metricspublic") {
		t.Errorf("wildcard -metrics: exit %d\n%s", code, out)
	}
	code, out = tooltest.Run(t, 10*time.Second, bin, "-listen", "UNIX:"+dir+"/b", "-metrics", "nonsense")
	if code == 0 || !strings.Contains(out, "Usage") {
		t.Errorf("-metrics nonsense: exit %d\n%s", code, out)
	}
	p := tooltest.Start(t, bin, "-listen", "UNIX:"+dir+"/c", "-metrics", "IP:"+port, "-metricspublic")
	tooltest.WaitDial(t, p, "tcp4", "127.0.0.1:"+port)
	if !bytes.Contains(fetch(t, "http://127.0.0.1:"+port+"/metrics"), []byte("distcache_build_info")) {
		t.Error("-metricspublic: no metrics")
	}
}

// sealKeyFile writes a -sealkey file with one key.
func sealKeyFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(tooltest.TempDir(t), "seal.keys")
	if err := os.WriteFile(p, []byte("k1 "+strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSealFailures: dc_client -sealkey counts an entry that does not open
// (here: stored straight into dc_server, unsealed), answered as a miss.
func TestSealFailures(t *testing.T) {
	p := startPair(t, "-sealkey", sealKeyFile(t))
	ctx := context.Background()
	direct, err := client.Dial(t.Context(), p.srvSock, clientOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if err := direct.Add(ctx, []byte("forged"), []byte("not sealed by anyone"), time.Hour); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(t.Context(), p.cliSock, clientOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(ctx, []byte("forged")); err != client.ErrNotFound {
		t.Fatalf("GET of an unsealed entry through -sealkey: %v, want a miss", err)
	}
	if err := c.Add(ctx, []byte("good"), []byte("sealed session"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, []byte("good")); err != nil {
		t.Fatalf("GET of a sealed entry: %v", err)
	}
	check(t, "dc_client", scrape(t, p.cliURL), map[string]float64{
		"distcache_seal_failures_total": 1,
		req("get", "miss"):              1,
		req("get", "hit"):               1,
	})
}

// With its near cache dc_client answers the GETs and HAVEs of the
// sessions it added itself, and counts them; dc_server sees only the
// others. (The other tests run dc_client with -near 0, to count every
// request on both sides.)
func TestNearCounters(t *testing.T) {
	p := startPair(t, "-near", "1000")
	p.cli.WaitOutput("the near cache is on", 10*time.Second)
	knownLoad(t, p.cliSock)
	cli, srv := scrape(t, p.cliURL), scrape(t, p.srvURL)
	for name, want := range map[string]float64{
		"distcache_near_hits_total":                       80, // 40 GETs and 40 HAVEs of sessions added here
		"distcache_near_misses_total":                     25, // 20 GETs and 5 HAVEs of sessions never added
		"distcache_near_sessions":                         30, // 40 added, 10 removed
		`distcache_requests_total{op="get",result="hit"}`: 40,
	} {
		if got := cli[name]; got != want {
			t.Errorf("dc_client: %s = %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]float64{
		`distcache_request_duration_seconds_count{op="get"}`:  20,
		`distcache_request_duration_seconds_count{op="have"}`: 5,
	} {
		if got := srv[name]; got != want {
			t.Errorf("dc_server: %s = %v, want %v", name, got, want)
		}
	}
}
