// SPDX-License-Identifier: Apache-2.0

// Package client is the Go API of distcache: Dial(ctx, addr, opts) gives a
// Client whose Add/Get/Remove/Has take a context.Context and return errors
// to test with errors.Is (ErrNotFound, ErrUnavailable, ErrClosed, ...;
// *ResultError for the server's other refusals; nal.ErrAddress for an
// address the grammar refuses).
//
// A Client is safe for concurrent use by any number of goroutines:
// concurrent operations never share a connection mid-exchange; a pool of
// idle connections serves them. Every operation is bounded (Options).
//
// The machinery under it is goimpl/client/dcctx, the one implementation of
// DC_CTX (the C library's client context): the pool, the retry of a dead
// connection, the timeouts. Client uses it over Go's net package; the C
// library uses it over goimpl/nal on the calling thread.
package client
