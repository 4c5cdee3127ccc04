// Command capi is the distcache engine: built with -buildmode=c-shared into
// libdistcache-engine.so, it carries the Go runtime and every dce_* export of
// the cgo layers nal/ and dc/. C programs never link it: the C front
// libraries in capi/front (libnal.so.1, libdistcache.so.1,
// libdistcacheserver.so.1) load it lazily with dlopen, once per process
// generation, and call the dce_* functions through a table.
package main

import (
	"C"

	_ "github.com/distcache-go/distcache/dc"
	_ "github.com/distcache-go/distcache/nal"
)

func main() {}
