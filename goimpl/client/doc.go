// Package client is the distcache client: DC_CTX semantics (spec
// LIBDISTCACHE.md §2 with the EDGES.md fixes) as Ctx, and an idiomatic Go
// API (Client) on the same machinery.
//
// Both types are safe for concurrent use by many goroutines: concurrent
// operations never share a connection mid-exchange. Every operation is
// bounded in time by Options.ConnectTimeout and Options.IOTimeout.
package client
