// SPDX-License-Identifier: Apache-2.0

package main

import (
	"testing"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
)

// Issue 12 item 3: dc_client's unix socket is owner-only whatever the
// umask, so another user's process cannot use it unless asked; with
// -sockperms, or -sockgroup of its group, it can (dc_test run as nobody
// through dc_client to a dc_server).
func TestSocketOwnerOnlyUnlessAsked(t *testing.T) {
	_, addr := startServer(t)
	tooltest.SocketAccess(t, tooltest.Bin(t, "dc_client"), []string{"-server", addr, "-retry", "100"}, "Info, connected to the server",
		tooltest.SocketCase{Args: nil, Allowed: false},
		tooltest.SocketCase{Args: []string{"-sockperms", "0666"}, Allowed: true},
		tooltest.SocketCase{Args: []string{"-sockgroup", "nogroup"}, Allowed: true})
}
