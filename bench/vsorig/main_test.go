// SPDX-License-Identifier: Apache-2.0

package main

import "testing"

// The operations the original dc_test did before its own check failed
// are read from its last lines; a round is measured over them.
func TestSucceededBefore(t *testing.T) {
	for _, c := range []struct {
		out  string
		want int
	}{
		{"Info, 10 sessions generated, will run 50000 random tests\nError, received mismatched session\nInfo, 1137 tests succeeded before the first failure\n", 1137},
		{"Error, transaction failure\nInfo, 2 tests succeeded before the first failure", 2},
		{"Info, all tests complete\n", 0},
	} {
		if got := succeededBefore([]byte(c.out)); got != c.want {
			t.Errorf("succeededBefore(%q) = %d, want %d", c.out, got, c.want)
		}
	}
}

// What the table's note says names the server each count belongs to.
func TestCheckNote(t *testing.T) {
	got := checkNote([2]clientChecks{{partial: 1}, {partial: 2, rerun: 3}})
	want := "against ours 1 round(s) measured over the operations before it, 0 run again; " +
		"against the original 2 round(s) measured over the operations before it, 3 run again"
	if got != want {
		t.Fatalf("checkNote: %q\nwant %q", got, want)
	}
	if checkNote([2]clientChecks{}) != "" || (clientChecks{}).any() {
		t.Fatal("a note without any failed check")
	}
}
