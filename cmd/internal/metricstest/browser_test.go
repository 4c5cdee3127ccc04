// SPDX-License-Identifier: Apache-2.0

package metricstest_test

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chartState is what the status page publishes about itself in
// window.distcacheStatus.
type chartState struct {
	Polls   int `json:"polls"`
	Samples int `json:"samples"`
	Errors  int `json:"errors"`
	Charts  map[string]struct {
		Points int      `json:"points"`
		Last   *float64 `json:"last"`
		Max    float64  `json:"max"`
	} `json:"charts"`
}

// TestStatusPageInChromium loads each daemon's status page in Debian's
// headless Chromium while a load runs: no console message of level error
// or warning and no exception, the charts draw the load (requests per
// second, hit ratio, latency; sessions against the limit on dc_server, the
// upstream on dc_client), and a screenshot goes to the artifact directory.
func TestStatusPageInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not installed (Debian package chromium, .ci/packages.d/metrics.txt)")
	}
	p := startPair(t)
	stop := make(chan struct{})
	load(t, p.cliSock, 1, stop)
	defer close(stop)

	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancel()

	for _, c := range []struct {
		name, url string
		charts    []string
	}{
		{"dc_server", p.srvURL, []string{"ops", "hit", "latency", "sessions", "bytes", "conns"}},
		{"dc_client", p.cliURL, []string{"ops", "hit", "latency", "upstream", "inflight", "conns"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := chromedp.NewContext(actx)
			defer cancel()
			ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
			defer cancelT()
			var mu sync.Mutex
			var bad []string
			msgs := chromedp.Console(ctx)
			go func() {
				for m, err := range msgs {
					if err != nil {
						return
					}
					if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
						mu.Lock()
						bad = append(bad, m.String()+" at "+m.URL)
						mu.Unlock()
					}
				}
			}()
			if err := chromedp.Do(ctx, chromedp.Navigate(c.url+"/")); err != nil {
				t.Fatal(err)
			}
			var st chartState
			deadline := time.Now().Add(60 * time.Second)
			for {
				st, err = chromedp.Run(ctx, chromedp.Evaluate[chartState](`window.distcacheStatus`))
				if err != nil {
					t.Fatal(err)
				}
				ready := st.Samples >= 4
				for _, name := range c.charts {
					ch, ok := st.Charts[name]
					ready = ready && ok && ch.Points >= 3
				}
				ready = ready && st.Charts["ops"].Max > 0
				// The charts end at the last sample's rates: on a loaded
				// machine one can hold a handful of operations (pinned to
				// one CPU at load 20, a hit ratio outside 0.4-0.6 once in
				// 3 runs), so the page is read again until they are the
				// load's, up to the deadline.
				ready = ready && chartsEndAtTheLoad(st, c.name == "dc_client") == nil
				if ready || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			for _, name := range c.charts {
				if ch, ok := st.Charts[name]; !ok || ch.Points < 3 {
					t.Errorf("chart %s not drawn with the load: %+v", name, ch)
				}
			}
			if err := chartsEndAtTheLoad(st, c.name == "dc_client"); err != nil {
				t.Error(err)
			}
			if st.Errors != 0 {
				t.Errorf("%d polls of status.json failed", st.Errors)
			}
			// Pixels actually drawn on each chart's canvas.
			inked, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]int](`(function () {
				var out = {};
				document.querySelectorAll(".chart canvas").forEach(function (cv) {
					var id = cv.parentNode.id.replace("chart-", "");
					if (!cv.width || !cv.height) { out[id] = 0; return; }
					var d = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height).data, n = 0;
					for (var i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
					out[id] = n;
				});
				return out;
			})()`))
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range c.charts {
				if inked[name] < 100 {
					t.Errorf("chart %s: %d pixels drawn on its canvas", name, inked[name])
				}
			}
			png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatal(err)
			}
			artifact(t, "status-"+c.name+".png", png)
			mu.Lock()
			defer mu.Unlock()
			for _, m := range bad {
				t.Errorf("console: %s", m)
			}
		})
	}
}

// chartsEndAtTheLoad says how the last points of st's charts differ from
// the load's (requests, a hit ratio of 0.5; dc_client's upstream up).
func chartsEndAtTheLoad(st chartState, client bool) error {
	last := func(name string) string {
		if l := st.Charts[name].Last; l != nil {
			return strconv.FormatFloat(*l, 'g', 4, 64)
		}
		return "nothing"
	}
	if ops := st.Charts["ops"]; ops.Last == nil || *ops.Last <= 0 {
		return fmt.Errorf("requests per second chart ends at %s, want the load's rate", last("ops"))
	}
	if hit := st.Charts["hit"]; hit.Last == nil || *hit.Last < 0.4 || *hit.Last > 0.6 {
		return fmt.Errorf("hit ratio chart ends at %s, the load's ratio is 0.5", last("hit"))
	}
	if up := st.Charts["upstream"]; client && (up.Last == nil || *up.Last != 1) {
		return fmt.Errorf("upstream chart ends at %s, want up (1)", last("upstream"))
	}
	return nil
}
