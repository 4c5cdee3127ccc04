// SPDX-License-Identifier: Apache-2.0

package main

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
)

// Issue 12 item 3: dc_client's unix socket is owner-only whatever the
// umask, so another user's process cannot use it unless asked; with
// -sockperms, or -sockgroup of its group, it can (dc_test run as nobody
// through dc_client to a dc_server).
func TestSocketOwnerOnlyUnlessAsked(t *testing.T) {
	_, addr := startServer(t)
	dir := tooltest.TempDir(t)
	syscall.Chmod(dir, 0o755)
	defer syscall.Umask(syscall.Umask(0)) // the most permissive umask
	for i, tc := range []struct {
		args []string
		ok   bool
	}{
		{nil, false},
		{[]string{"-sockperms", "0666"}, true},
		{[]string{"-sockgroup", "nogroup"}, true},
	} {
		sock := dir + "/s" + strconv.Itoa(i)
		p := tooltest.Start(t, tooltest.Bin(t, "dc_client"),
			append([]string{"-server", addr, "-listen", "UNIX:" + sock, "-retry", "100"}, tc.args...)...)
		tooltest.WaitDial(t, p, "unix", sock)
		p.WaitOutput("Info, connected to the server", 10*time.Second)
		code, out := tooltest.RunAsNobody(t, 30*time.Second, "dc_test", "-connect", "UNIX:"+sock, "-sessions", "4", "-ops", "40")
		if tc.ok && code != 0 {
			t.Errorf("dc_client %v: another user failed (exit %d):\n%s", tc.args, code, out)
		}
		if fi, err := os.Stat(sock); err != nil {
			t.Error(err)
		} else if !tc.ok && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", sock, fi.Mode().Perm())
		}
		if !tc.ok && code == 0 {
			t.Errorf("dc_client %v: another user could use the socket:\n%s", tc.args, out)
		}
		p.Signal(syscall.SIGTERM)
		p.Wait(10 * time.Second)
	}
}
