// SPDX-License-Identifier: Apache-2.0

// Package waittest waits in a test for a condition another goroutine or
// process brings about (a connection counted, a subscriber dropped), so
// that tests wait on the condition itself rather than sleep a guessed time.
package waittest

import (
	"testing"
	"time"
)

// Limit is how long For waits before it fails the test: long enough for
// a starved CI machine, short of the test binary's own timeout.
const Limit = 20 * time.Second

// For checks cond every millisecond until it holds, and fails the test,
// naming what it waited for, if it has not held within Limit.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(Limit)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
