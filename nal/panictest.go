// SPDX-License-Identifier: Apache-2.0

//go:build distcache_panictest

package nal

/*
#include <stdlib.h>
static char *panic_env(void) { return getenv("DISTCACHE_TEST_PANIC"); }
*/
import "C"

import "strings"

// Only in the C suite's test engine (go build -tags distcache_panictest):
// while the environment variable DISTCACHE_TEST_PANIC holds "*" or a
// comma-separated list of C names (NAL_ADDRESS_create, DC_CTX_get_session,
// ...), every reference lookup inside those exports panics. It is read with
// getenv(3) at each call, so a C program can switch it on and off.
func init() {
	testHook = func() {
		v := C.panic_env()
		if v == nil {
			return
		}
		want, name := C.GoString(v), exportName()
		for _, w := range strings.Split(want, ",") {
			if w == "*" || w == name {
				panic("injected by DISTCACHE_TEST_PANIC")
			}
		}
	}
}
