// SPDX-License-Identifier: Apache-2.0

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
)

func TestMain(m *testing.M) { tooltest.Main(m) }

func server(t *testing.T) string {
	dir := tooltest.TempDir(t)
	p := tooltest.Start(t, tooltest.Bin(t, "dc_server"), "-listen", "UNIX:"+dir+"/s")
	tooltest.WaitDial(t, p, "unix", dir+"/s")
	return dir
}

func TestPassesDirect(t *testing.T) {
	dir := server(t)
	for _, args := range [][]string{
		{"-ops", "3000"},
		{"-ops", "3000", "-persistent", "-clients", "4", "-sessions", "40"},
		{"-ops", "500", "-datamin", "2000", "-datamax", "4096", "-progress", "100"},
	} {
		code, out := tooltest.Run(t, 60*time.Second, tooltest.Bin(t, "dc_test"), append([]string{"-connect", "UNIX:" + dir + "/s"}, args...)...)
		if code != 0 || !strings.Contains(out, "Info, all tests complete") {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
		for _, want := range []string{"sessions generated, will run", "ops/s, latency p50 "} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: no %q in\n%s", args, want, out)
			}
		}
		if args[len(args)-2] == "-progress" && !strings.Contains(out, "Info, total operations =     500") {
			t.Errorf("no progress lines:\n%s", out)
		}
	}
}

func TestPassesThroughProxy(t *testing.T) {
	dir := server(t)
	// -reqtimeout 10000: dc_test stops at its first failure, and an
	// answer over the default 100 ms on a loaded machine would be one.
	p := tooltest.Start(t, tooltest.Bin(t, "dc_client"), "-listen", "UNIX:"+dir+"/c", "-server", "UNIX:"+dir+"/s", "-reqtimeout", "10000")
	tooltest.WaitDial(t, p, "unix", dir+"/c")
	p.WaitOutput("connected to the server", 10*time.Second)
	for _, args := range [][]string{
		{"-ops", "2000"},
		{"-ops", "4000", "-persistent", "-clients", "8", "-sessions", "30"},
	} {
		code, out := tooltest.Run(t, 60*time.Second, tooltest.Bin(t, "dc_test"), append([]string{"-connect", "UNIX:" + dir + "/c"}, args...)...)
		if code != 0 || !strings.Contains(out, "Info, all tests complete") {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
	}
}

// Against a proxy without a server every operation fails, so the first
// add that must succeed is reported and the exit status is 1.
func TestDetectsWrongAnswers(t *testing.T) {
	dir := tooltest.TempDir(t)
	p := tooltest.Start(t, tooltest.Bin(t, "dc_client"), "-listen", "UNIX:"+dir+"/c", "-server", "UNIX:"+dir+"/none")
	tooltest.WaitDial(t, p, "unix", dir+"/c")
	code, out := tooltest.Run(t, 60*time.Second, tooltest.Bin(t, "dc_test"), "-connect", "UNIX:"+dir+"/c", "-ops", "1000")
	if code != 1 || !strings.Contains(out, "tests succeeded before the first failure") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "Error, add failed!") && !strings.Contains(out, "Error, transaction failure") {
		t.Errorf("no error line naming the failure:\n%s", out)
	}
}

func TestOptions(t *testing.T) {
	bin := tooltest.Bin(t, "dc_test")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-h"}, 0, "Usage: dc_test"},
		{nil, 1, "Error, must provide -connect"},
		{[]string{"-connect", "UNIX:/x", "-datamin", "3"}, 1, "Error, -datamin should be at least 4"},
		{[]string{"-connect", "UNIX:/x", "-datamax", "4097"}, 1, "Error, -datamax should be at most 4096"},
		{[]string{"-connect", "UNIX:/x", "-timevar", "60"}, 1, "Error, -timevar must be strictly smaller than -timeout"},
		{[]string{"-connect", "UNIX:/x", "-withcert", "1"}, 1, "Error, no OpenSSL support compiled in, -with-cert not available."},
		{[]string{"-connect", "UNIX:/x", "-sessions", "513"}, 1, "Error, -sessions given an invalid argument"},
		{[]string{"-connect", "UNIX:/x", "-ops"}, 1, "Error, -ops requires an argument"},
		{[]string{"-connect", "UNIX:/x", "-x"}, 1, `Error, "-x" not recognised`},
		{[]string{"-connect", "bogus"}, 1, "Error, 'DC_CTX' creation failed"},
	} {
		code, out := tooltest.Run(t, 10*time.Second, bin, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, output %q; want %d, %q", tc.args, code, out, tc.code, tc.want)
		}
	}
}
