// SPDX-License-Identifier: Apache-2.0

package main

import (
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
			append([]string{"-server", addr, "-listen", "UNIX:" + sock, "-retry", "100", "-pidfile", sock + ".pid"}, tc.args...)...)
		tooltest.WaitDial(t, p, "unix", sock)
		p.WaitOutput("Info, connected to the server", 10*time.Second)
		tooltest.CheckOtherUser(t, sock, sock+".pid", tc.ok)
		p.Signal(syscall.SIGTERM)
		p.Wait(10 * time.Second)
	}
}
