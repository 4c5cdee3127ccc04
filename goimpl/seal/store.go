// SPDX-License-Identifier: Apache-2.0

package seal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// Options tunes a Store. The zero value works.
type Options struct {
	// Logf receives one line when an entry fails to open, at most one a
	// second (with the count of failures since the last line); nil
	// discards them.
	Logf func(format string, args ...any)
	// LogEvery is the minimum interval between such lines (default 1s).
	LogEvery time.Duration
}

// Store seals the data of every session added to the store it wraps and
// opens it on every read. An entry that does not open is a miss
// (store.ErrNotFound), counted in Failures. Safe for concurrent use.
type Store struct {
	inner store.Store
	path  string
	keys  atomic.Pointer[Keyring]
	opts  Options

	failures atomic.Uint64
	logMu    sync.Mutex
	lastLog  time.Time
	logged   uint64 // failures already reported
}

// New wraps inner, sealing with kr. path, when not empty, is the key file
// that Reload reads again.
func New(inner store.Store, kr *Keyring, opts Options) *Store {
	s := &Store{inner: inner, opts: opts, path: kr.source}
	if s.opts.LogEvery <= 0 {
		s.opts.LogEvery = time.Second
	}
	s.keys.Store(kr)
	return s
}

// Open loads the key file at path (LoadKeyFile) and wraps inner.
func Open(inner store.Store, path string, opts Options) (*Store, error) {
	kr, err := LoadKeyFile(path)
	if err != nil {
		return nil, err
	}
	return New(inner, kr, opts), nil
}

// Reload reads the key file again and, if it is valid, seals and opens
// with its keys from now on. On error the previous keys stay in use.
func (s *Store) Reload() error {
	if s.path == "" {
		return errors.New("seal: keys were not read from a file")
	}
	kr, err := LoadKeyFile(s.path)
	if err != nil {
		return err
	}
	s.keys.Store(kr)
	return nil
}

// Keys is the keyring in use.
func (s *Store) Keys() *Keyring { return s.keys.Load() }

// Failures counts the entries that failed to open since the Store was made.
func (s *Store) Failures() uint64 { return s.failures.Load() }

// Add checks id, data and ttl as every store does (store.Check), seals
// data and adds the sealed entry under id. The entry is Overhead bytes
// longer than data; a wrapped store with a size limit (a distcache
// upstream takes at most 32768 bytes of payload) refuses what no longer
// fits with store.ErrInvalid.
func (s *Store) Add(ctx context.Context, id, data []byte, ttl time.Duration) error {
	if err := store.Check(id, data, ttl); err != nil {
		return err
	}
	kr := s.keys.Load()
	b := kr.Seal(make([]byte, 0, len(data)+Overhead(len(kr.first.id))), id, data)
	if err := s.inner.Add(ctx, id, b, ttl); err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return fmt.Errorf("%w (%d bytes of data, %d once sealed)", err, len(data), len(b))
		}
		return err
	}
	return nil
}

// Get opens the entry id and appends its data to dst.
func (s *Store) Get(ctx context.Context, id, dst []byte) ([]byte, error) {
	return s.read(ctx, id, dst, s.inner.Get)
}

// GetLife is the wrapped store's GetLife (store.LifeGetter), then
// opening.
func (s *Store) GetLife(ctx context.Context, id, dst []byte) ([]byte, time.Duration, error) {
	var left time.Duration
	d, err := s.read(ctx, id, dst, func(ctx context.Context, id, dst []byte) ([]byte, error) {
		var err error
		dst, left, err = store.GetLife(ctx, s.inner, id, dst)
		return dst, err
	})
	if err != nil {
		left = 0
	}
	return d, left, err
}

// Take is the wrapped store's Take, then opening.
func (s *Store) Take(ctx context.Context, id, dst []byte) ([]byte, error) {
	return s.read(ctx, id, dst, s.inner.Take)
}

// Have reports a live entry only if it opens, so that Have and Get agree.
func (s *Store) Have(ctx context.Context, id []byte) error {
	_, err := s.read(ctx, id, nil, s.inner.Get)
	return err
}

// Remove removes the entry id, sealed or not.
func (s *Store) Remove(ctx context.Context, id []byte) error { return s.inner.Remove(ctx, id) }

// Close closes the wrapped store.
func (s *Store) Close() error { return s.inner.Close() }

type scratch struct{ buf, ad []byte }

var scratchPool = sync.Pool{New: func() any {
	return &scratch{buf: make([]byte, 0, 4096), ad: make([]byte, 0, 2+MaxKeyIDLen+proto.MaxIDLen)}
}}

func (s *Store) read(ctx context.Context, id, dst []byte,
	get func(context.Context, []byte, []byte) ([]byte, error)) ([]byte, error) {
	sc := scratchPool.Get().(*scratch)
	defer func() {
		if cap(sc.buf) <= 64<<10 {
			scratchPool.Put(sc)
		}
	}()
	b, err := get(ctx, id, sc.buf[:0])
	sc.buf = b[:0]
	if err != nil {
		return dst, err
	}
	out, err := s.keys.Load().open(dst, id, b, sc.ad)
	if err != nil {
		s.failed(id, err)
		return dst, fmt.Errorf("%w (%w)", store.ErrNotFound, err)
	}
	return out, nil
}

// failed counts an entry that did not open and reports it, rate-limited.
func (s *Store) failed(id []byte, err error) {
	n := s.failures.Add(1)
	if s.opts.Logf == nil {
		return
	}
	now := time.Now()
	s.logMu.Lock()
	if !s.lastLog.IsZero() && now.Sub(s.lastLog) < s.opts.LogEvery {
		s.logMu.Unlock()
		return
	}
	since := n - s.logged
	s.lastLog, s.logged = now, n
	s.logMu.Unlock()
	more := ""
	if since > 1 {
		more = fmt.Sprintf(" (and %d more since the last report)", since-1)
	}
	s.opts.Logf("Warning, sealed session %x did not open, answered as a miss: %v%s; %d failures in all",
		id, err, more, n)
}
