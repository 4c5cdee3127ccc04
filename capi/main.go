// SPDX-License-Identifier: Apache-2.0

// Command capi is the distcache engine: built with -buildmode=c-shared into
// libdistcache-engine-N.so (N: DCF_ENGINE_ABI in front/engine.h), it carries
// the Go runtime and every dce_* export of the cgo layers nal/ and dc/. C
// programs never link it: the C front libraries in capi/front (libnal.so.1,
// libdistcache.so.1, libdistcacheserver.so.1) load it lazily with dlopen,
// once per process generation, check dce_abi() against their own interface
// (and name dce_engine_version() when they refuse one), and call the dce_* functions through a table.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/front
#include "engine.h"

static const char *engine_sig(void) { return DCF_ENGINE_SIG; }
*/
import "C"

import (
	_ "github.com/distcache-go/distcache/dc"
	"github.com/distcache-go/distcache/internal/procs"
	capinal "github.com/distcache-go/distcache/nal"
)

// One P until two C threads are in the engine at once (internal/procs).
func init() { procs.Init() }

// dce_abi is the text of the interface this engine was built with
// (DCF_ENGINE_SIG); the loader refuses an engine whose text is not its own.
//
//export dce_abi
func dce_abi() (ret *C.char) {
	defer capinal.Rescue(&ret, nil)
	return (*C.char)(C.engine_sig())
}

func main() {}
