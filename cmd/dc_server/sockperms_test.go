// SPDX-License-Identifier: Apache-2.0

package main

import (
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
		p := tooltest.Start(t, tooltest.Bin(t, "dc_server"), append([]string{"-listen", "UNIX:" + sock, "-pidfile", sock + ".pid"}, tc.args...)...)
		tooltest.WaitDial(t, p, "unix", sock)
		tooltest.CheckOtherUser(t, sock, sock+".pid", tc.ok)
		p.Signal(syscall.SIGTERM)
		p.Wait(10 * time.Second)
	}
}
