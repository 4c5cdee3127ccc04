// SPDX-License-Identifier: Apache-2.0

package main

import (
	"testing"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
)

// Issue 12 item 3: dc_server's unix socket is owner-only whatever the
// umask; -sockperms opens it to others (dc_test run as nobody).
func TestSocketOwnerOnlyUnlessAsked(t *testing.T) {
	tooltest.SocketAccess(t, tooltest.Bin(t, "dc_server"), nil, "",
		tooltest.SocketCase{Args: nil, Allowed: false},
		tooltest.SocketCase{Args: []string{"-sockperms", "0666"}, Allowed: true})
}
