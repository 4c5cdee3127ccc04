// SPDX-License-Identifier: Apache-2.0

// Package version holds the version of distcache-go: one number for the
// tools, the C libraries' engine and the packages built from this tree.
//
// The number lives in the file VERSION at the top of the repository. The
// Makefile stamps it into Version with the linker (-ldflags -X, see
// GO_LDFLAGS_VERSION there); a build that did not go through make, such as
// "go install module@tag", falls back to the module version the Go
// toolchain recorded, and a plain "go build" in a checkout reports "devel".
package version

import (
	"runtime/debug"
	"strings"
)

// Version is set at link time by make:
//
//	-X github.com/distcache-go/distcache/goimpl/version.Version=2.0.0
var Version string

// String returns the version: the stamped one, else the module version
// from the binary's build information (without its "v"), else "devel".
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return strings.TrimPrefix(v, "v")
		}
	}
	return "devel"
}
