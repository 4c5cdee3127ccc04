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

// Issue 12 item 3: dc_server's unix socket is owner-only whatever the
// umask; -sockperms opens it to others (dc_test run as nobody).
func TestSocketOwnerOnlyUnlessAsked(t *testing.T) {
	dir := tooltest.TempDir(t)
	syscall.Chmod(dir, 0o755)
	defer syscall.Umask(syscall.Umask(0)) // the most permissive umask
	for i, tc := range []struct {
		args []string
		ok   bool
	}{
		{nil, false},
		{[]string{"-sockperms", "0666"}, true},
	} {
		sock := dir + "/s" + strconv.Itoa(i)
		p := tooltest.Start(t, tooltest.Bin(t, "dc_server"), append([]string{"-listen", "UNIX:" + sock}, tc.args...)...)
		tooltest.WaitDial(t, p, "unix", sock)
		code, out := tooltest.RunAsNobody(t, 30*time.Second, "dc_test", "-connect", "UNIX:"+sock, "-sessions", "4", "-ops", "40")
		if tc.ok && code != 0 {
			t.Errorf("dc_server %v: another user failed (exit %d):\n%s", tc.args, code, out)
		}
		if fi, err := os.Stat(sock); err != nil {
			t.Error(err)
		} else if !tc.ok && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", sock, fi.Mode().Perm())
		}
		if !tc.ok && code == 0 {
			t.Errorf("dc_server %v: another user could use the socket:\n%s", tc.args, out)
		}
		p.Signal(syscall.SIGTERM)
		p.Wait(10 * time.Second)
	}
}
