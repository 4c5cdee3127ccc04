// SPDX-License-Identifier: Apache-2.0

package upstream_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/nearmap"
	"github.com/distcache-go/distcache/goimpl/upstream"
)

// sharedNear is nearOn with a map shared (Near.Share).
func sharedNear(t *testing.T, servers ...upstream.Server) (*upstream.Near, *upstream.Upstream, *nearmap.Map) {
	t.Helper()
	n, u := nearOn(t, servers...)
	m, err := nearmap.New(64)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); m.Close() })
	n.Share(m)
	return n, u, m
}

func inMap(m *nearmap.Map, id string) (string, bool) {
	d, ok := nearmap.Lookup(m.Bytes(), []byte(id), nearmap.Now(), nil)
	return string(d), ok
}

// The map holds what the near cache keeps, loses what a notice, a REMOVE
// or a flush takes from it, and is read only under a lease dc_client
// renews.
func TestNearMapFollowsTheNearCache(t *testing.T) {
	ns := startNearServer(t, filepath.Join(t.TempDir(), "s"), true)
	var d dials
	a, _ := nearOn(t, d.server("s", ns.path))
	b, _, m := sharedNear(t, d.server("s", ns.path))
	eventually(t, 10*time.Second, "a lease", func() bool { return m.Live() && leased(m) })

	mustAdd(t, b, "added")
	if got, ok := inMap(m, "added"); !ok || got != "data-added" {
		t.Fatalf("an ADD through the near cache: map has %q %v", got, ok)
	}
	mustAdd(t, a, "read")
	if _, ok := inMap(m, "read"); ok {
		t.Fatal("the map holds what this near cache never saw")
	}
	if getFrom(t, b, "read") != "data-read" {
		t.Fatal("GET failed")
	}
	if got, ok := inMap(m, "read"); !ok || got != "data-read" {
		t.Fatalf("a GET answered by the server: map has %q %v", got, ok)
	}
	// A removal elsewhere: its notice drops the entry.
	if err := a.Remove(bg, []byte("read")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the notice to reach the map", func() bool { _, ok := inMap(m, "read"); return !ok })
	// A removal through this near cache drops it before it goes.
	if err := b.Remove(bg, []byte("added")); err != nil {
		t.Fatal(err)
	}
	if _, ok := inMap(m, "added"); ok {
		t.Fatal("a REMOVE through the near cache left the map's entry")
	}

	// The subscription lost: nothing is read until it is back, and
	// what was there is gone.
	mustAdd(t, b, "kept")
	eventually(t, 10*time.Second, "three connections", func() bool { return d.n() >= 4 })
	d.mu.Lock()
	d.conns[3].Close() // b's subscription
	d.mu.Unlock()
	eventually(t, 10*time.Second, "the map to stop being read", func() bool { _, ok := inMap(m, "kept"); return !ok })
	eventually(t, 10*time.Second, "a lease again", func() bool { return m.Live() && leased(m) })
	if _, ok := inMap(m, "kept"); ok {
		t.Fatal("an entry from before the loss came back")
	}

	// Closed, the near cache stops the map at once.
	mustAdd(t, b, "last")
	if _, ok := inMap(m, "last"); !ok {
		t.Fatal("no entry")
	}
	b.Close()
	if _, ok := inMap(m, "last"); ok || m.Live() {
		t.Fatal("the map is read after the near cache closed")
	}
}

// leased reports whether the map's lease runs now.
func leased(m *nearmap.Map) bool {
	return int64(nearmap.NativeLease(m.Bytes())) > nearmap.Now()
}

// The connection to the server lost, the map forgets at once what came
// over it (no lookup reaches dc_client to notice); StopSharing leaves the
// map unread for good while the near cache goes on.
func TestNearMapLinkLossAndStop(t *testing.T) {
	ns := startNearServer(t, filepath.Join(t.TempDir(), "s"), true)
	var d dials
	n, u, m := sharedNear(t, d.server("s", ns.path))
	eventually(t, 10*time.Second, "a lease", func() bool { return m.Live() && leased(m) })
	mustAdd(t, n, "a")
	if _, ok := inMap(m, "a"); !ok {
		t.Fatal("no entry")
	}
	d.mu.Lock()
	d.conns[0].Close() // the requests' connection
	d.mu.Unlock()
	eventually(t, 10*time.Second, "the entry to go", func() bool { _, ok := inMap(m, "a"); return !ok })
	eventually(t, 10*time.Second, "a live subscription again", func() bool { return u.NearState().Live() })
	eventually(t, 10*time.Second, "a lease again", func() bool { return m.Live() && leased(m) })
	mustAdd(t, n, "b")
	if _, ok := inMap(m, "b"); !ok {
		t.Fatal("no entry after the reconnection")
	}
	n.StopSharing()
	if _, ok := inMap(m, "b"); ok || m.Live() {
		t.Fatal("the map is read after StopSharing")
	}
	mustAdd(t, n, "c")
	if getFrom(t, n, "c") != "data-c" || n.Stats().Hits == 0 {
		t.Fatalf("the near cache stopped too: %+v", n.Stats())
	}
	if _, ok := inMap(m, "c"); ok || m.Live() {
		t.Fatal("an entry went into the map after StopSharing")
	}
	n.StopSharing() // again: nothing
}
