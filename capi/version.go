// SPDX-License-Identifier: Apache-2.0

package main

// #include <stdlib.h>
import "C"

import (
	"github.com/distcache-go/distcache/goimpl/version"
	capinal "github.com/distcache-go/distcache/nal"
)

// engineVersion is the project version (goimpl/version, stamped by make
// from the file VERSION) as a C string that lives as long as the engine.
var engineVersion = C.CString(version.String())

// dce_engine_version returns the engine's version, "2.0.0": the front can
// compare it with its own before it uses an engine it loaded.
//
//export dce_engine_version
func dce_engine_version() (ret *C.char) {
	defer capinal.Rescue(&ret, nil)
	return engineVersion
}
