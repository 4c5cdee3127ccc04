// SPDX-License-Identifier: Apache-2.0

package metricstest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/client"
)

// load runs GETs through addr until stop is closed, alternating a session
// that exists and one that does not: a hit ratio of exactly one half.
// It returns the number of GETs done.
func load(t *testing.T, addr string, workers int, stop <-chan struct{}) *atomic.Int64 {
	t.Helper()
	c, err := client.Dial(t.Context(), addr, clientOptions)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Add(ctx, []byte("present"), []byte("some session data"), time.Hour); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Get(ctx, []byte("present")); err != nil {
					t.Errorf("GET present: %v", err)
					return
				}
				if _, err := c.Get(ctx, []byte("absent")); err != client.ErrNotFound {
					t.Errorf("GET absent: %v", err)
					return
				}
				n.Add(2)
			}
		}()
	}
	t.Cleanup(func() { wg.Wait(); c.Close() })
	return &n
}

// promQuery runs an instant PromQL query and returns its one value (NaN
// when the result is empty).
func promQuery(t *testing.T, base, q string) float64 {
	t.Helper()
	body := fetch(t, base+"/api/v1/query?query="+url.QueryEscape(q))
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v %s", q, err, body)
	}
	if len(r.Data.Result) != 1 {
		return math.NaN()
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("query %s: value %q", q, s)
	}
	return v
}

// TestPrometheusScrapes: Debian's Prometheus, started here, scrapes both
// daemons every second while a load runs; PromQL over its HTTP API gives
// the request rate the load produced and its hit ratio of one half.
func TestPrometheusScrapes(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not installed (Debian package prometheus, .ci/packages.d/metrics.txt)")
	}
	p := startPair(t)
	dir := tooltest.TempDir(t)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: dc_server
    static_configs: [{targets: [%q]}]
  - job_name: dc_client
    static_configs: [{targets: [%q]}]
`, strings.TrimPrefix(p.srvURL, "http://"), strings.TrimPrefix(p.cliURL, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := tooltest.FreePort(t)
	prom := tooltest.Start(t, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--log.level=warn")
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	tooltest.WaitDial(t, prom, "tcp4", strings.TrimPrefix(base, "http://"))
	tooltest.Eventually(t, 60*time.Second, func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "Prometheus to be ready")

	stop := make(chan struct{})
	start := time.Now()
	done := load(t, p.cliSock, 2, stop)
	defer close(stop)

	rate := func(job string) float64 {
		return promQuery(t, base, `sum(rate(distcache_requests_total{job="`+job+`",op="get"}[5s]))`)
	}
	ratio := func(job string) float64 {
		return promQuery(t, base, `sum(rate(distcache_requests_total{job="`+job+`",op="get",result="hit"}[5s]))`+
			` / sum(rate(distcache_requests_total{job="`+job+`",op="get"}[5s]))`)
	}
	// Wait until both jobs are up and have a few seconds of samples.
	tooltest.Eventually(t, 60*time.Second, func() bool {
		for _, job := range []string{"dc_server", "dc_client"} {
			if v := promQuery(t, base, `sum_over_time(up{job="`+job+`"}[1m])`); !(v >= 5) { // NaN: no scrape yet
				return false
			}
		}
		return true
	}, "Prometheus to scrape both daemons five times")
	measured := float64(done.Load()) / time.Since(start).Seconds()
	for _, job := range []string{"dc_server", "dc_client"} {
		r, h := rate(job), ratio(job)
		t.Logf("%s: PromQL rate %.0f GET/s (load measured %.0f/s), hit ratio %.4f", job, r, measured, h)
		if !(r > measured/4 && r < measured*4) {
			t.Errorf("%s: rate %v GET/s, the load did about %.0f/s", job, r, measured)
		}
		if math.Abs(h-0.5) > 0.02 {
			t.Errorf("%s: hit ratio %v, want 0.5", job, h)
		}
	}
	if v := promQuery(t, base, `distcache_upstream_up{job="dc_client"}`); v != 1 {
		t.Errorf("distcache_upstream_up = %v, want 1", v)
	}
	if v := promQuery(t, base, `histogram_quantile(0.99, sum by (le) (rate(distcache_request_duration_seconds_bucket{job="dc_client"}[5s])))`); !(v > 0 && v <= 1) {
		t.Errorf("p99 of dc_client's answers = %v s, want within (0, 1]", v)
	}
}
