// SPDX-License-Identifier: Apache-2.0

package metricstest_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/client"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestMain(m *testing.M) { tooltest.Main(m) }

// pair is a dc_server and a dc_client in front of it, both with -metrics
// on loopback.
type pair struct {
	srv, cli       *tooltest.Proc
	srvURL, cliURL string // http://127.0.0.1:port
	srvSock        string // UNIX: address of dc_server
	cliSock        string // UNIX: address of dc_client
}

// clientOptions are the test clients' options: fixed, generous bounds.
// With the adaptive 100 ms floor a GET through dc_client timed out on a
// loaded machine (a clean-clone make check at load 10-20:
// TestStatusPageInChromium's "GET present: ... i/o timeout"); these tests
// count requests, they do not time them.
var clientOptions = &client.Options{ConnectTimeout: 20 * time.Second, IOTimeout: 20 * time.Second}

// startPair starts the pair; dc_client gets -reqtimeout 10000 (for the
// same reason) unless clientArgs say otherwise.
func startPair(t *testing.T, clientArgs ...string) *pair {
	t.Helper()
	dir := tooltest.TempDir(t)
	p := &pair{srvSock: "UNIX:" + filepath.Join(dir, "server"), cliSock: "UNIX:" + filepath.Join(dir, "client")}
	sport, cport := tooltest.FreePort(t), tooltest.FreePort(t)
	p.srvURL = "http://127.0.0.1:" + strconv.Itoa(sport)
	p.cliURL = "http://127.0.0.1:" + strconv.Itoa(cport)
	p.srv = tooltest.Start(t, tooltest.Bin(t, "dc_server"), "-listen", p.srvSock,
		"-metrics", "IP:127.0.0.1:"+strconv.Itoa(sport))
	tooltest.WaitDial(t, p.srv, "unix", strings.TrimPrefix(p.srvSock, "UNIX:"))
	p.cli = tooltest.Start(t, tooltest.Bin(t, "dc_client"), append([]string{"-listen", p.cliSock, "-server", p.srvSock,
		"-metrics", "IP:127.0.0.1:" + strconv.Itoa(cport), "-reqtimeout", "10000", "-near", "0"}, clientArgs...)...)
	tooltest.WaitDial(t, p.cli, "unix", strings.TrimPrefix(p.cliSock, "UNIX:"))
	tooltest.WaitDial(t, p.srv, "tcp4", strings.TrimPrefix(p.srvURL, "http://"))
	tooltest.WaitDial(t, p.cli, "tcp4", strings.TrimPrefix(p.cliURL, "http://"))
	// The client is usable once its upstream is up.
	tooltest.Eventually(t, 10*time.Second, func() bool {
		return scrape(t, p.cliURL)[`distcache_upstream_up{server="`+p.srvSock+`"}`] == 1
	}, "dc_client's upstream to be up")
	return p
}

// fetch returns the body of url.
func fetch(t testing.TB, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return b
}

// families parses a scrape of base/metrics.
func families(t testing.TB, base string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(fetch(t, base+"/metrics"))))
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// scrape returns each sample of base/metrics as name{sorted labels} →
// value; histograms as _bucket, _count and _sum samples.
func scrape(t testing.TB, base string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for name, mf := range families(t, base) {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := func(suffix string, extra ...string) string {
				all := append(append([]string(nil), ls...), extra...)
				sort.Strings(all)
				if len(all) == 0 {
					return name + suffix
				}
				return name + suffix + "{" + strings.Join(all, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key("")] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key("")] = m.Gauge.GetValue()
			case m.Untyped != nil:
				out[key("")] = m.Untyped.GetValue()
			case m.Histogram != nil:
				out[key("_count")] = float64(m.Histogram.GetSampleCount())
				out[key("_sum")] = m.Histogram.GetSampleSum()
				for _, b := range m.Histogram.GetBucket() {
					out[key("_bucket", fmt.Sprintf("le=%q", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)))] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return out
}

func req(op, result string) string {
	return fmt.Sprintf("distcache_requests_total{op=%q,result=%q}", op, result)
}

func durCount(op string) string {
	return fmt.Sprintf("distcache_request_duration_seconds_count{op=%q}", op)
}

// sum adds the samples whose key starts with prefix.
func sum(s map[string]float64, prefix string) float64 {
	v := 0.0
	for k, x := range s {
		if strings.HasPrefix(k, prefix) {
			v += x
		}
	}
	return v
}

// check compares the wanted samples of got.
func check(t *testing.T, who string, got, want map[string]float64) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if g, ok := got[k]; !ok || g != want[k] {
			t.Errorf("%s: %s = %v (present %v), want %v", who, k, g, ok, want[k])
		}
	}
}

// artifact writes b to name in the test's artifact directory (kept with
// go test -artifacts) and says where.
func artifact(t *testing.T, name string, b []byte) {
	t.Helper()
	p := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", p)
}
