// SPDX-License-Identifier: Apache-2.0

package storetest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/store"
)

// mapStore is a minimal correct store.Store: the reference the suite must
// pass. Its flaw field switches on one defect, for the test that proves the
// suite catches it.
type mapStore struct {
	mu   sync.Mutex
	m    map[string]mapEntry
	now  func() time.Time
	flaw string
}

type mapEntry struct {
	data   []byte
	expiry time.Time
}

func newMapStore(now func() time.Time, flaw string) *mapStore {
	if now == nil {
		now = time.Now
	}
	return &mapStore{m: make(map[string]mapEntry), now: now, flaw: flaw}
}

func (s *mapStore) live(id []byte) (mapEntry, bool) {
	e, ok := s.m[string(id)]
	if ok && s.flaw != "never-expires" && s.now().After(e.expiry) {
		delete(s.m, string(id))
		return e, false
	}
	return e, ok
}

func (s *mapStore) Add(_ context.Context, id, data []byte, ttl time.Duration) error {
	if s.flaw != "no-validation" {
		if err := store.Check(id, data, ttl); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(id); ok && s.flaw != "overwrites" {
		return store.ErrDuplicate
	}
	if s.flaw == "half-ttl" {
		ttl /= 2
	}
	d := data
	if s.flaw != "aliases" {
		d = append([]byte(nil), data...)
	}
	s.m[string(id)] = mapEntry{d, s.now().Truncate(time.Millisecond).Add(ttl)}
	return nil
}

func (s *mapStore) Get(_ context.Context, id, dst []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.live(id)
	if !ok {
		return dst, store.ErrNotFound
	}
	if s.flaw == "drops-dst" {
		dst = dst[:0]
	}
	return append(dst, e.data...), nil
}

func (s *mapStore) Remove(_ context.Context, id []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(id); !ok {
		return store.ErrNotFound
	}
	delete(s.m, string(id))
	return nil
}

func (s *mapStore) Have(_ context.Context, id []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(id); !ok {
		return store.ErrNotFound
	}
	return nil
}

func (s *mapStore) Take(ctx context.Context, id, dst []byte) ([]byte, error) {
	if s.flaw == "racy-take" {
		d, err := s.Get(ctx, id, dst)
		if err != nil {
			return d, err
		}
		time.Sleep(time.Millisecond) // widen the window a racy store has
		s.Remove(ctx, id)
		return d, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.live(id)
	if !ok {
		return dst, store.ErrNotFound
	}
	delete(s.m, string(id))
	return append(dst, e.data...), nil
}

func (s *mapStore) Close() error { return nil }

func TestReferenceStore(t *testing.T) {
	Run(t, func(*testing.T) store.Store { return newMapStore(nil, "") })
}

func TestReferenceStoreClock(t *testing.T) {
	RunClock(t, func(_ *testing.T, now func() time.Time) store.Store { return newMapStore(now, "") })
}

// TestSuiteCatchesFlaws runs the suite, in a child process, against stores
// with one defect each: every run must fail, naming the subtest that caught
// it.
func TestSuiteCatchesFlaws(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite in child processes")
	}
	for flaw, subtest := range map[string]string{
		"overwrites":    "DuplicateKeepsFirst",
		"never-expires": "ExpiryRealTime",
		"half-ttl":      "ExpiryRealTime",
		"no-validation": "Limits",
		"drops-dst":     "GetAppendsToDst",
		"aliases":       "Copies",
		"racy-take":     "TakeRace",
	} {
		t.Run(flaw, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestFlawedStore$", "-test.count=1")
			cmd.Env = append(os.Environ(), "STORETEST_FLAW="+flaw)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a store that %s:\n%s", flaw, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestFlawedStore/"+subtest) {
				t.Fatalf("the suite failed, but not in %s:\n%s", subtest, out)
			}
		})
	}
}

// TestFlawedStore is TestSuiteCatchesFlaws' child.
func TestFlawedStore(t *testing.T) {
	flaw := os.Getenv("STORETEST_FLAW")
	if flaw == "" {
		return // not a child
	}
	Run(t, func(*testing.T) store.Store { return newMapStore(nil, flaw) })
}
