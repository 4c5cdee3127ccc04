// SPDX-License-Identifier: Apache-2.0

package seal

import (
	"context"
	"sync"
	"time"

	"github.com/distcache-go/distcache/goimpl/store"
)

// memStore is the smallest store.Store with the distcache semantics, whose
// entries a test can read and tamper with directly, as a hostile server
// could.
type memStore struct {
	mu sync.Mutex
	m  map[string]memEntry
}

type memEntry struct {
	data    []byte
	expires time.Time
}

func newMem() *memStore { return &memStore{m: map[string]memEntry{}} }

func (s *memStore) live(id []byte) (memEntry, bool) {
	e, ok := s.m[string(id)]
	if ok && !time.Now().Before(e.expires) {
		delete(s.m, string(id))
		ok = false
	}
	return e, ok
}

func (s *memStore) Add(_ context.Context, id, data []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(id); ok {
		return store.ErrDuplicate
	}
	s.m[string(id)] = memEntry{append([]byte(nil), data...), time.Now().Add(ttl)}
	return nil
}

func (s *memStore) Get(_ context.Context, id, dst []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.live(id)
	if !ok {
		return dst, store.ErrNotFound
	}
	return append(dst, e.data...), nil
}

func (s *memStore) Take(ctx context.Context, id, dst []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.live(id)
	if !ok {
		return dst, store.ErrNotFound
	}
	delete(s.m, string(id))
	return append(dst, e.data...), nil
}

func (s *memStore) Remove(_ context.Context, id []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(id); !ok {
		return store.ErrNotFound
	}
	delete(s.m, string(id))
	return nil
}

func (s *memStore) Have(_ context.Context, id []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(id); !ok {
		return store.ErrNotFound
	}
	return nil
}

func (s *memStore) Close() error { return nil }

// raw returns the stored bytes of id (nil if absent).
func (s *memStore) raw(id string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id].data
}

// put stores bytes under id directly, bypassing the add-keep-first rule.
func (s *memStore) put(id string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[id] = memEntry{append([]byte(nil), b...), time.Now().Add(time.Hour)}
}
