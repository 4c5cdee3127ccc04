// SPDX-License-Identifier: Apache-2.0

// Package store is the contract between the distcache daemons and the
// places sessions are kept: the in-memory cache, a distcache upstream (one
// or more dc_servers), Redis. dc_server and dc_client serve the protocol
// from a Store; a new kind of store plugs in here and touches no main
// package. Wrappers (sealing, metrics) are Stores around a Store.
//
// Every implementation keeps the distcache semantics: an ADD of an id that
// is live keeps the first data and reports ErrDuplicate; an entry lives for
// its ttl (to the millisecond) and reads never extend it; ids are 1..64
// bytes and data 1..32768 bytes, ttls 0..7 days: Add refuses anything else
// with ErrInvalid (Check), and Get, Remove, Have and Take of an id out of
// range find nothing. Handler answers the protocol from a Store, and the
// package storetest holds the rules as a test suite every Store passes.
package store

import (
	"context"
	"errors"
	"time"
)

// Store is a session store. Its methods are safe for concurrent use. A
// method that cannot reach its backing store within ctx's deadline returns
// an error wrapping ErrUnavailable, never blocks past the deadline.
type Store interface {
	// Add stores data under id for ttl, unless a live entry with that id
	// exists (ErrDuplicate; the first data is kept).
	Add(ctx context.Context, id, data []byte, ttl time.Duration) error
	// Get appends the data of the live entry id to dst (ErrNotFound when
	// there is none).
	Get(ctx context.Context, id, dst []byte) ([]byte, error)
	// Remove deletes the live entry id (ErrNotFound when there was none).
	Remove(ctx context.Context, id []byte) error
	// Have reports whether a live entry exists: nil, or ErrNotFound.
	Have(ctx context.Context, id []byte) error
	// Take is Get and Remove in one atomic step: of concurrent Takes of
	// one entry, exactly one gets the data (single-use sessions).
	// ErrUnsupported when the store cannot do it atomically.
	Take(ctx context.Context, id, dst []byte) ([]byte, error)
	// Close releases the store's resources.
	Close() error
}

// Errors a Store returns, for errors.Is.
var (
	ErrNotFound    = errors.New("store: session not found")
	ErrDuplicate   = errors.New("store: a live session has this id")
	ErrInvalid     = errors.New("store: id, data or lifetime out of range")
	ErrUnavailable = errors.New("store: unavailable")
	ErrUnsupported = errors.New("store: operation not supported")
)

// LifeGetter is a Store that can tell how long an entry has left. A
// client that keeps copies of sessions near its own clients (dc_client's
// near cache) keeps a copy read from the server no longer than that.
// Wrappers implement it by calling GetLife on the store they wrap.
type LifeGetter interface {
	// GetLife is Get that also returns the entry's remaining lifetime,
	// rounded down to the millisecond; 0 when it cannot tell.
	GetLife(ctx context.Context, id, dst []byte) (data []byte, left time.Duration, err error)
}

// GetLife is s's GetLife when s is a LifeGetter, and otherwise its Get
// with a lifetime of 0 (unknown).
func GetLife(ctx context.Context, s Store, id, dst []byte) ([]byte, time.Duration, error) {
	if lg, ok := s.(LifeGetter); ok {
		return lg.GetLife(ctx, id, dst)
	}
	d, err := s.Get(ctx, id, dst)
	return d, 0, err
}

// NeverBlocks reports whether s says its calls never wait for anything but
// short locks in this process (a method NeverBlocks returning true, as the
// in-memory cache has): a server may then call it from a goroutine that
// serves many connections, which a store waiting for the network (Redis,
// an upstream dc_server) would stall. A Store that says nothing may block.
func NeverBlocks(s Store) bool {
	nb, ok := s.(interface{ NeverBlocks() bool })
	return ok && nb.NeverBlocks()
}
