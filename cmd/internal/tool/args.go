// SPDX-License-Identifier: Apache-2.0

package tool

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/distcache-go/distcache/goimpl/version"
)

// Args walks a command line the way the original tools do: every option is
// an exact, case-sensitive word with one leading dash, and its value is the
// next word. Errors print the original messages (with the option's single
// dash; the original printed "--listen" for dc_server, dc_test and
// dc_snoop, a typo not kept), then the usage text, and exit 1. -h, -help
// and -? print the usage to stderr and exit 0; -version prints the
// program's name and version (goimpl/version) to stdout and exits 0.
type Args struct {
	usage string
	args  []string
	i     int
	cur   string
}

// NewArgs starts walking args (os.Args[1:]).
func NewArgs(args []string, usage string) *Args {
	return &Args{usage: usage, args: append([]string(nil), args...), i: -1}
}

// Next advances to the next option. It handles the help switches itself.
func (a *Args) Next() bool {
	a.i++
	if a.i >= len(a.args) {
		return false
	}
	a.cur = a.args[a.i]
	switch a.cur {
	case "-h", "-help", "-?":
		fmt.Fprint(os.Stderr, a.usage)
		os.Exit(0)
	case "-version":
		fmt.Println(VersionLine())
		os.Exit(0)
	}
	return true
}

// VersionLine is what -version prints: "dc_server 2.0.0".
func VersionLine() string {
	return filepath.Base(os.Args[0]) + " " + version.String()
}

// Opt is the current option word.
func (a *Args) Opt() string { return a.cur }

// Value consumes and returns the current option's value.
func (a *Args) Value() string {
	if a.i+1 >= len(a.args) {
		a.Fail(fmt.Sprintf("Error, %s requires an argument", a.cur))
	}
	a.i++
	return a.args[a.i]
}

// SetValue replaces the value just consumed (used to make paths absolute
// before a re-exec).
func (a *Args) SetValue(v string) { a.args[a.i] = v }

// AddrValue consumes a distcache address. A relative UNIX: path is made
// absolute, in the value returned and in the arguments a -daemon re-exec
// passes on, so that it names the same file after the daemon's chdir.
// An unparsable address is returned as given, for the caller to report.
func (a *Args) AddrValue() string {
	v := a.Value()
	if ad, err := ParseAddr(v); err == nil {
		v = ad.Abs().Str
		a.SetValue(v)
	}
	return v
}

// Int consumes a decimal value in [lo, hi].
func (a *Args) Int(lo, hi int64) int64 {
	v := a.Value()
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		a.Invalid()
	}
	return n
}

// Invalid reports a bad value for the current option.
func (a *Args) Invalid() {
	a.Fail(fmt.Sprintf("Error, %s given an invalid argument", a.cur))
}

// Unknown reports an unrecognised word.
func (a *Args) Unknown() {
	a.Fail(fmt.Sprintf("Error, \"%s\" not recognised", a.cur))
}

// Fail prints msg and the usage, and exits 1.
func (a *Args) Fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	fmt.Fprint(os.Stderr, a.usage)
	os.Exit(1)
}

// Rewritten is the command line with SetValue's replacements.
func (a *Args) Rewritten() []string { return append([]string(nil), a.args...) }

// Die prints one line to stderr (or, in a daemon child that has not yet
// reported readiness, to the waiting parent) and exits 1.
func Die(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if readyPipe != nil {
		fmt.Fprintln(readyPipe, msg)
		readyPipe.Close()
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}
