// SPDX-License-Identifier: Apache-2.0

package upstream

import (
	"context"
	"net"

	"github.com/distcache-go/distcache/goimpl/nal"
)

// ServerAt is a Server for a distcache address (UNIX:<path>,
// IP:<host>:<port>, IPv6:[<host>]:<port>), for Go programs that talk to a
// dc_client or dc_server directly. A host name is resolved once, here.
func ServerAt(ctx context.Context, addr string) (Server, error) {
	t, err := nal.ParseTarget(ctx, addr)
	if err != nil {
		return Server{}, err
	}
	network := "unix"
	switch t.Kind {
	case nal.KindIPv4:
		network = "tcp4"
	case nal.KindIPv6:
		network = "tcp6"
	}
	return Server{Name: addr, Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, t.Addr)
	}}, nil
}
