// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
	dto "github.com/prometheus/client_model/go"
)

// mapStore is a minimal store.Store for the tests.
type mapStore struct {
	mu   sync.Mutex
	m    map[string][]byte
	fail error // returned by every call when set
}

func newMapStore() *mapStore { return &mapStore{m: map[string][]byte{}} }

func (s *mapStore) Add(_ context.Context, id, data []byte, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if _, ok := s.m[string(id)]; ok {
		return store.ErrDuplicate
	}
	s.m[string(id)] = append([]byte(nil), data...)
	return nil
}

func (s *mapStore) Get(_ context.Context, id, dst []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return dst, s.fail
	}
	d, ok := s.m[string(id)]
	if !ok {
		return dst, store.ErrNotFound
	}
	return append(dst, d...), nil
}

func (s *mapStore) Remove(_ context.Context, id []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if _, ok := s.m[string(id)]; !ok {
		return store.ErrNotFound
	}
	delete(s.m, string(id))
	return nil
}

func (s *mapStore) Have(_ context.Context, id []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if _, ok := s.m[string(id)]; !ok {
		return store.ErrNotFound
	}
	return nil
}

func (s *mapStore) Take(ctx context.Context, id, dst []byte) ([]byte, error) {
	out, err := s.Get(ctx, id, dst)
	if err == nil {
		err = s.Remove(ctx, id)
	}
	return out, err
}

func (s *mapStore) Close() error { return nil }

// scrape gathers r and returns name{sorted labels} → value, with
// histograms as _count and _sum.
func scrape(t *testing.T, r *Registry) map[string]float64 {
	t.Helper()
	mfs, err := r.Prometheus().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName() + labelString(m.GetLabel())
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[mf.GetName()+"_count"+labelString(m.GetLabel())] = float64(m.GetHistogram().GetSampleCount())
				out[mf.GetName()+"_sum"+labelString(m.GetLabel())] = m.GetHistogram().GetSampleSum()
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

func TestWrapStoreCountsEveryRequest(t *testing.T) {
	r := New(Options{Program: "dc_server", Version: "test"})
	base := newMapStore()
	st := r.WrapStore(base, Distcache)
	ctx := context.Background()
	id := func(i int) []byte { return []byte(fmt.Sprintf("id-%d", i)) }
	for i := range 10 {
		if err := st.Add(ctx, id(i), []byte("data"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		st.Add(ctx, id(i), []byte("other"), time.Minute) // duplicates
	}
	for i := range 15 {
		st.Get(ctx, id(i), nil) // 10 hits, 5 misses
	}
	for i := range 12 {
		st.Have(ctx, id(i)) // 10 hits, 2 misses
	}
	st.Take(ctx, id(0), nil) // hit
	st.Take(ctx, id(0), nil) // miss
	st.Remove(ctx, id(1))    // hit
	st.Remove(ctx, id(1))    // miss
	base.fail = fmt.Errorf("backend down: %w", store.ErrUnavailable)
	st.Get(ctx, id(2), nil) // error
	st.Add(ctx, id(99), []byte("x"), time.Minute)

	got := scrape(t, r)
	want := map[string]float64{
		req("add", "stored"): 10, req("add", "duplicate"): 3, req("add", "error"): 1,
		req("get", "hit"): 10, req("get", "miss"): 5, req("get", "error"): 1,
		req("have", "hit"): 10, req("have", "miss"): 2, req("have", "error"): 0,
		req("take", "hit"): 1, req("take", "miss"): 1,
		req("remove", "hit"): 1, req("remove", "miss"): 1,
		durCount("add"): 14, durCount("get"): 16, durCount("have"): 12, durCount("take"): 2, durCount("remove"): 2,
		`distcache_build_info{goversion="` + runtimeVersion() + `",program="dc_server",version="test"}`: 1,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for k := range got {
		if strings.Contains(k, "sessiond") {
			t.Errorf("sessiond series %s without a sessiond store", k)
		}
	}
}

func TestWrapStoreSessiond(t *testing.T) {
	r := New(Options{Program: "dc_server"})
	base := newMapStore()
	dc := r.WrapStore(base, Distcache)
	sd := r.WrapStore(base, Sessiond)
	ctx := context.Background()
	sd.Add(ctx, []byte("a"), []byte("1"), time.Minute)
	sd.Add(ctx, []byte("a"), []byte("1"), time.Minute)
	sd.Get(ctx, []byte("a"), nil)
	dc.Get(ctx, []byte("a"), nil)
	sd.Remove(ctx, []byte("a"))
	sd.Get(ctx, []byte("a"), nil)
	got := scrape(t, r)
	for k, v := range map[string]float64{
		req("sessiond_set", "stored"): 1, req("sessiond_set", "duplicate"): 1,
		req("sessiond_get", "hit"): 1, req("sessiond_get", "miss"): 1, req("sessiond_del", "hit"): 1,
		req("get", "hit"): 1, req("add", "stored"): 0,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestNilRegistryIsANoOp(t *testing.T) {
	var r *Registry
	base := newMapStore()
	if st := r.WrapStore(base, Distcache); st != store.Store(base) {
		t.Errorf("WrapStore on nil = %T, want the store itself", st)
	}
	if st := r.WrapBackend(base); st != store.Store(base) {
		t.Errorf("WrapBackend on nil = %T, want the store itself", st)
	}
	r.ConnAccepted()
	r.ConnRefused(RefuseLimit)
	r.ConnClosed(CloseIdle)
	r.BytesIn(10)
	r.BytesOut(10)
	r.HitAge(time.Second)
	r.SealFailures(func() uint64 { return 1 })
	r.UpstreamLevels(func() int { return 1 }, nil)
	r.Cache(func() CacheStats { return CacheStats{} })
	u := r.Upstream("x")
	u.Up(true)
	u.Reconnect()
	u.Error(io.EOF)
	u.ErrorKind(KindProtocol)
	if err := r.Dump(io.Discard); err != nil {
		t.Error(err)
	}
}

func TestConnectionsAndBytes(t *testing.T) {
	r := New(Options{Program: "dc_server"})
	for range 5 {
		r.ConnAccepted()
	}
	r.ConnClosed(CloseClient)
	r.ConnClosed(CloseIdle)
	r.ConnClosed(CloseCorrupt)
	r.ConnRefused(RefuseLimit)
	r.ConnRefused(RefuseLimit)
	r.BytesIn(100)
	r.BytesIn(23)
	r.BytesOut(7)
	got := scrape(t, r)
	for k, v := range map[string]float64{
		"distcache_connections_accepted_total":                         5,
		"distcache_connections_open":                                   2,
		`distcache_connections_closed_total{reason="client"}`:          1,
		`distcache_connections_closed_total{reason="idle"}`:            1,
		`distcache_connections_closed_total{reason="corrupt"}`:         1,
		`distcache_connections_closed_total{reason="tls"}`:             0,
		`distcache_connections_closed_total{reason="partial_request"}`: 0,
		`distcache_connections_refused_total{reason="limit"}`:          2,
		"distcache_received_bytes_total":                               123,
		"distcache_sent_bytes_total":                                   7,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

func TestCacheHitAgeAndSeal(t *testing.T) {
	r := New(Options{Program: "dc_server"})
	st := CacheStats{Sessions: 7, Bytes: 7000, SessionsLimit: 100, Expired: 3, Evicted: 2, Removed: 1}
	r.Cache(func() CacheStats { return st })
	r.HitAge(2 * time.Second)
	r.HitAge(400 * time.Second)
	r.SealFailures(func() uint64 { return 2 })
	got := scrape(t, r)
	for k, v := range map[string]float64{
		"distcache_cache_sessions":                        7,
		"distcache_cache_bytes":                           7000,
		"distcache_cache_sessions_limit":                  100,
		`distcache_cache_removed_total{reason="expired"}`: 3,
		`distcache_cache_removed_total{reason="evicted"}`: 2,
		`distcache_cache_removed_total{reason="removed"}`: 1,
		"distcache_session_age_at_hit_seconds_count":      2,
		"distcache_session_age_at_hit_seconds_sum":        402,
		"distcache_seal_failures_total":                   2,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, ok := got["distcache_cache_bytes_limit"]; ok {
		t.Error("distcache_cache_bytes_limit exported without a byte limit")
	}
	st.Sessions = 9
	if g := scrape(t, r)["distcache_cache_sessions"]; g != 9 {
		t.Errorf("after a change distcache_cache_sessions = %v, want 9 (read at each scrape)", g)
	}
}

func TestUpstreamAndClientGauges(t *testing.T) {
	r := New(Options{Program: "dc_client"})
	a, b := r.Upstream("IP:10.0.0.1:9001"), r.Upstream("IP:10.0.0.2:9001")
	if r.Upstream("IP:10.0.0.1:9001") != a {
		t.Error("Upstream of the same name gave a new object")
	}
	a.Up(true)
	b.Up(true)
	b.Up(false)
	a.Reconnect()
	a.Reconnect()
	b.Error(syscall.ECONNREFUSED)
	b.Error(&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded})
	b.ErrorKind(KindProtocol)
	r.UpstreamLevels(func() int { return 2 }, func() int { return 4 })
	got := scrape(t, r)
	for k, v := range map[string]float64{
		`distcache_upstream_up{server="IP:10.0.0.1:9001"}`:                           1,
		`distcache_upstream_up{server="IP:10.0.0.2:9001"}`:                           0,
		`distcache_upstream_reconnects_total{server="IP:10.0.0.1:9001"}`:             2,
		`distcache_upstream_errors_total{kind="refused",server="IP:10.0.0.2:9001"}`:  1,
		`distcache_upstream_errors_total{kind="timeout",server="IP:10.0.0.2:9001"}`:  1,
		`distcache_upstream_errors_total{kind="protocol",server="IP:10.0.0.2:9001"}`: 1,
		`distcache_upstream_errors_total{kind="tls",server="IP:10.0.0.2:9001"}`:      0,
		"distcache_upstream_requests_in_flight":                                      2,
		"distcache_upstream_requests_waiting":                                        4,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, ok := got["distcache_session_age_at_hit_seconds_count"]; ok {
		t.Error("dc_client exports the server's session age histogram")
	}
}

func TestKind(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want ErrorKind
	}{
		{"deadline", context.DeadlineExceeded, KindTimeout},
		{"i/o timeout", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, KindTimeout},
		{"refused", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, KindRefused},
		{"tls alert", fmt.Errorf("handshake: %w", tls.AlertError(42)), KindTLS},
		{"tls text", errors.New("remote error: tls: bad certificate"), KindTLS},
		{"corrupt", fmt.Errorf("read: %w", &proto.CorruptError{Reason: "bad level"}), KindProtocol},
		{"eof", io.EOF, KindClosed},
		{"reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, KindClosed},
		{"unavailable", fmt.Errorf("x: %w", store.ErrUnavailable), KindUnavailable},
		{"other", errors.New("something"), KindOther},
	} {
		if got := Kind(c.err); got != c.want {
			t.Errorf("%s: Kind(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

func TestWrapBackend(t *testing.T) {
	r := New(Options{Program: "dc_server"})
	base := newMapStore()
	be := r.WrapBackend(base)
	ctx := context.Background()
	be.Add(ctx, []byte("a"), []byte("1"), time.Minute)
	be.Add(ctx, []byte("a"), []byte("1"), time.Minute) // duplicate: not an error
	be.Get(ctx, []byte("b"), nil)                      // miss: not an error
	base.fail = &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}
	be.Get(ctx, []byte("a"), nil)
	base.fail = io.EOF
	be.Have(ctx, []byte("a"))
	got := scrape(t, r)
	for k, v := range map[string]float64{
		`distcache_backend_errors_total{kind="timeout"}`:              1,
		`distcache_backend_errors_total{kind="closed"}`:               1,
		`distcache_backend_errors_total{kind="other"}`:                0,
		`distcache_backend_request_duration_seconds_count{op="add"}`:  2,
		`distcache_backend_request_duration_seconds_count{op="get"}`:  2,
		`distcache_backend_request_duration_seconds_count{op="have"}`: 1,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	for _, c := range []struct {
		network, addr string
		public        bool
		ok            bool
	}{
		{"tcp4", "127.0.0.1:0", false, true},
		{"tcp4", "localhost:0", false, true},
		{"tcp6", "[::1]:0", false, true},
		{"tcp4", "0.0.0.0:0", false, false},
		{"tcp4", ":0", false, false},
		{"tcp4", "0.0.0.0:0", true, true},
		{"unix", t.TempDir() + "/m.sock", false, true},
	} {
		ln, err := Listen(c.network, c.addr, c.public)
		if ln != nil {
			ln.Close()
		}
		if c.ok && err != nil && !strings.Contains(err.Error(), "address family") && !strings.Contains(err.Error(), "cannot assign") {
			t.Errorf("Listen(%s, %s, %v): %v", c.network, c.addr, c.public, err)
		}
		if !c.ok && !errors.Is(err, ErrNotLoopback) {
			t.Errorf("Listen(%s, %s, %v) = %v, want ErrNotLoopback", c.network, c.addr, c.public, err)
		}
	}
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestServe(t *testing.T) {
	r := New(Options{Program: "dc_server"})
	r.WrapStore(newMapStore(), Distcache).Get(context.Background(), []byte("x"), nil)
	ln, err := Listen("tcp4", "127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	srv := r.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	resp, body := get(t, base+"/metrics")
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`distcache_requests_total{op="get",result="miss"} 1`)) {
		t.Errorf("/metrics: %d, body lacks the get miss:\n%s", resp.StatusCode, body)
	}
	resp, body = get(t, base+"/")
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("<canvas")) && !bytes.Contains(body, []byte("createElement(\"canvas\")")) {
		t.Errorf("/: %d, not the status page", resp.StatusCode)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'sha256-") {
		t.Errorf("/: Content-Security-Policy %q does not pin the script", csp)
	}
	for _, ext := range []string{"http://", "https://", "//cdn"} {
		if bytes.Contains(body, []byte("src=\""+ext)) || bytes.Contains(body, []byte("href=\""+ext)) {
			t.Errorf("status page loads an external asset (%s)", ext)
		}
	}
	resp, body = get(t, base+"/status.json")
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"program":"dc_server"`)) {
		t.Errorf("/status.json: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, base+"/nothing"); resp.StatusCode != 404 {
		t.Errorf("/nothing: %d, want 404", resp.StatusCode)
	}
}

func TestSamplerRates(t *testing.T) {
	r := New(Options{Program: "dc_server"})
	st := r.WrapStore(newMapStore(), Distcache)
	r.Cache(func() CacheStats { return CacheStats{Sessions: 4, SessionsLimit: 10} })
	s := NewSampler(r, 3)
	ctx := context.Background()
	t0 := time.Unix(1000, 0)
	s.Take(t0)
	if n := len(s.Samples()); n != 0 {
		t.Fatalf("after the baseline: %d samples, want 0", n)
	}
	for i := range 4 {
		st.Add(ctx, []byte{byte(i)}, []byte("d"), time.Minute)
	}
	for i := range 8 { // 4 hits, 4 misses
		st.Get(ctx, []byte{byte(i)}, nil)
	}
	s.Take(t0.Add(2 * time.Second))
	smp := s.Samples()
	if len(smp) != 1 {
		t.Fatalf("%d samples, want 1", len(smp))
	}
	if smp[0].Ops != 6 {
		t.Errorf("ops = %v/s, want 6 (12 requests in 2 s)", smp[0].Ops)
	}
	if smp[0].HitRatio == nil || *smp[0].HitRatio != 0.5 {
		t.Errorf("hit ratio = %v, want 0.5", smp[0].HitRatio)
	}
	if smp[0].P50 == nil || smp[0].P99 == nil || *smp[0].P99 < *smp[0].P50 {
		t.Errorf("p50 %v, p99 %v", smp[0].P50, smp[0].P99)
	}
	if smp[0].Sessions == nil || *smp[0].Sessions != 4 || *smp[0].SessionsLimit != 10 {
		t.Errorf("sessions %v / %v, want 4 / 10", smp[0].Sessions, smp[0].SessionsLimit)
	}
	for i := 3; i < 6; i++ {
		s.Take(t0.Add(time.Duration(i) * time.Second))
	}
	smp = s.Samples()
	if len(smp) != 3 || smp[0].T != t0.Add(3*time.Second).UnixMilli() || smp[2].T != t0.Add(5*time.Second).UnixMilli() {
		t.Errorf("ring of 3 after 4 samples: %d samples, first at %d", len(smp), smp[0].T)
	}
	if smp[2].Ops != 0 || smp[2].HitRatio != nil {
		t.Errorf("an idle second: ops %v, hit ratio %v; want 0 and none", smp[2].Ops, smp[2].HitRatio)
	}
}

func TestQuantile(t *testing.T) {
	bounds := []float64{1, 2, 4}
	for _, c := range []struct {
		q    float64
		cum  []float64
		want float64
	}{
		{0.5, []float64{10, 10, 10, 10}, 0.5}, // all in the first bucket
		{0.5, []float64{0, 10, 10, 10}, 1.5},  // all in (1,2]
		{0.99, []float64{50, 50, 100, 100}, 3.96},
		{0.5, []float64{0, 0, 0, 10}, 4}, // +Inf bucket: the top bound
	} {
		got := quantile(c.q, bounds, c.cum)
		if got == nil || (*got-c.want) > 1e-9 || (c.want-*got) > 1e-9 {
			t.Errorf("quantile(%v, %v) = %v, want %v", c.q, c.cum, got, c.want)
		}
	}
	if quantile(0.5, bounds, []float64{0, 0, 0, 0}) != nil {
		t.Error("quantile of nothing is not nil")
	}
}

func TestDump(t *testing.T) {
	r := New(Options{Program: "dc_server"})
	r.WrapStore(newMapStore(), Distcache).Get(context.Background(), []byte("x"), nil)
	r.ConnAccepted()
	var b bytes.Buffer
	if err := r.Dump(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`Info, metric distcache_requests_total{op="get",result="miss"} 1` + "\n",
		`Info, metric distcache_request_duration_seconds_count{op="get"} 1` + "\n",
		"Info, metric distcache_connections_open 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Dump lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `result="hit"`) || strings.Contains(out, "go_") {
		t.Errorf("Dump prints zero or foreign series:\n%s", out)
	}
}

// TestPromtoolCheckMetrics runs Prometheus' own linter over a full
// exposition of both daemons' metric sets.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	for _, prog := range []string{"dc_server", "dc_client"} {
		r := New(Options{Program: prog})
		st := r.WrapStore(newMapStore(), Distcache)
		r.WrapStore(st, Sessiond)
		r.WrapBackend(newMapStore())
		r.Cache(func() CacheStats { return CacheStats{SessionsLimit: 1, BytesLimit: 1} })
		r.Upstream("IP:127.0.0.1:1").Up(true)
		ln, err := Listen("tcp4", "127.0.0.1:0", false)
		if err != nil {
			t.Fatal(err)
		}
		srv := r.Serve(ln)
		_, body := get(t, "http://"+ln.Addr().String()+"/metrics")
		srv.Close()
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) != 0 {
			t.Errorf("%s: promtool check metrics: %v\n%s", prog, err, out)
		}
	}
}

func TestWrappedStoreDoesNotAllocate(t *testing.T) {
	r := New(Options{Program: "dc_server"})
	var base store.Store = newMapStore() // both called through the interface
	st := r.WrapStore(base, Distcache)
	ctx := context.Background()
	id, no := []byte("id"), []byte("no")
	st.Add(ctx, id, []byte("data"), time.Minute)
	dst := make([]byte, 0, 64)
	plain := testing.AllocsPerRun(200, func() { base.Get(ctx, id, dst); base.Have(ctx, no) })
	wrapped := testing.AllocsPerRun(200, func() { st.Get(ctx, id, dst); st.Have(ctx, no) })
	if wrapped > plain {
		t.Errorf("wrapped Get+Have: %v allocations, the store alone %v", wrapped, plain)
	}
}

func runtimeVersion() string { return runtime.Version() }

func TestCloseReasons(t *testing.T) {
	timeout := &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}
	for _, c := range []struct {
		name             string
		err              error
		closing, partial bool
		want             CloseReason
	}{
		{"eof", io.EOF, false, false, CloseClient},
		{"reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, false, false, CloseClient},
		{"idle", timeout, false, false, CloseIdle},
		{"partial timeout", timeout, false, true, ClosePartialRequest},
		{"half a request", io.ErrUnexpectedEOF, false, true, ClosePartialRequest},
		{"corrupt", &proto.CorruptError{Reason: "bad level"}, false, false, CloseCorrupt},
		{"tls", errors.New("remote error: tls: bad certificate"), false, false, CloseTLS},
		{"shutdown", timeout, true, false, CloseShutdown},
		{"other", errors.New("something"), false, false, CloseError},
	} {
		if got := ReadCloseReason(c.err, c.closing, c.partial); got != c.want {
			t.Errorf("%s: ReadCloseReason = %s, want %s", c.name, closeNames[got], closeNames[c.want])
		}
	}
	if got := WriteCloseReason(&net.OpError{Op: "write", Err: os.ErrDeadlineExceeded}); got != CloseResponseTimeout {
		t.Errorf("write timeout: %s, want response_timeout", closeNames[got])
	}
	if got := WriteCloseReason(os.NewSyscallError("write", syscall.EPIPE)); got != CloseClient {
		t.Errorf("EPIPE: %s, want client", closeNames[got])
	}
}
