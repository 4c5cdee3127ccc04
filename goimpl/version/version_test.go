// SPDX-License-Identifier: Apache-2.0

package version

import "testing"

func TestStampedWins(t *testing.T) {
	old := Version
	defer func() { Version = old }()
	Version = "9.8.7"
	if got := String(); got != "9.8.7" {
		t.Fatalf("String() = %q with Version stamped 9.8.7", got)
	}
}

func TestUnstamped(t *testing.T) {
	old := Version
	defer func() { Version = old }()
	Version = ""
	// A test binary's main module is reported as "(devel)", so this is the
	// checkout case.
	if got := String(); got != "devel" {
		t.Fatalf("String() = %q for an unstamped build of a checkout, want devel", got)
	}
}
