// SPDX-License-Identifier: Apache-2.0

package redisstore

import (
	"context"
	"crypto/tls"
	"net"
	"time"
)

func netDialer(timeout time.Duration) net.Dialer {
	return net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
}

// tlsDialer dials with TLS when the client asks for it (tlsCfg set), with
// the configuration cfg gives for the address at that moment.
func tlsDialer(cfg func(addr string) *tls.Config) func(context.Context, string, *net.Dialer, *tls.Config) (net.Conn, error) {
	return func(ctx context.Context, addr string, d *net.Dialer, tlsCfg *tls.Config) (net.Conn, error) {
		if d.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d.Timeout)
			defer cancel()
		}
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil || tlsCfg == nil {
			return nc, err
		}
		var c *tls.Config
		if cfg != nil {
			c = cfg(addr)
		}
		if c == nil {
			host, _, _ := net.SplitHostPort(addr)
			c = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		tc := tls.Client(nc, c)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		return tc, nil
	}
}
