// SPDX-License-Identifier: Apache-2.0

package metricstest_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// metricName matches the metric names a PromQL expression of ours uses.
var metricName = regexp.MustCompile(`\b(?:distcache|go|process)_[a-z0-9_]+\b`)

// queries returns every "expr" and templating "query" string in a
// dashboard, wherever it is nested.
func queries(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && (k == "expr" || k == "query") {
				*out = append(*out, s)
			}
			queries(e, out)
		}
	case []any:
		for _, e := range x {
			queries(e, out)
		}
	}
}

// TestGrafanaDashboardMetricsExist: every metric name in the queries of
// contrib/grafana/distcache.json is in a live scrape of dc_server or
// dc_client; the scrape config example is valid for promtool.
func TestGrafanaDashboardMetricsExist(t *testing.T) {
	root := moduleRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "contrib/grafana/distcache.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	var qs []string
	queries(dash, &qs)
	used := map[string]bool{}
	for _, q := range qs {
		for _, n := range metricName.FindAllString(q, -1) {
			used[n] = true
		}
	}
	if len(used) < 15 {
		t.Fatalf("found only %d metric names in %d queries: %v", len(used), len(qs), used)
	}

	p := startPair(t, "-sealkey", sealKeyFile(t)) // -sealkey: seal_failures_total exists
	knownLoad(t, p.cliSock)                       // so that every series has samples
	have := map[string]bool{}
	for _, url := range []string{p.srvURL, p.cliURL} {
		for k := range scrape(t, url) {
			name, _, _ := strings.Cut(k, "{")
			have[name] = true
		}
	}
	var missing []string
	for n := range used {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	for _, n := range missing {
		t.Errorf("the dashboard queries %s, which neither daemon exports", n)
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not installed (Debian package prometheus)")
	}
	if out, err := exec.Command(promtool, "check", "config", filepath.Join(root, "contrib/prometheus/distcache.yml")).CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}

// moduleRoot is the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}
