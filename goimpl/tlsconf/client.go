// SPDX-License-Identifier: Apache-2.0

package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync/atomic"
	"time"
)

// Client is the TLS side of the connections a proxy makes to its server.
type Client struct {
	opts  Options
	state atomic.Pointer[clientState]
}

type clientState struct {
	cfg  *tls.Config // ServerName empty; set per dial
	cert *tls.Certificate
}

// NewClient loads the client's files: o.CA (or the system roots), and
// o.Cert with o.Key when given.
func NewClient(o Options) (*Client, error) {
	if (o.Cert == "") != (o.Key == "") {
		return nil, errNoCert
	}
	c := &Client{opts: o}
	st, err := c.load()
	if err != nil {
		return nil, err
	}
	c.state.Store(st)
	return c, nil
}

// Reload reads the files again; on error the previous state stays.
// Connections already made keep what they were made with.
func (c *Client) Reload() error {
	st, err := c.load()
	if err != nil {
		return err
	}
	c.state.Store(st)
	return nil
}

// Describe says what the client presents and trusts.
func (c *Client) Describe() string {
	st := c.state.Load()
	d := "server verified against "
	if c.opts.CA != "" {
		d += "CA " + c.opts.CA
	} else {
		d += "the system roots"
	}
	if st.cert != nil {
		d += "; client certificate " + leafInfo(st.cert)
	}
	return d
}

func (c *Client) load() (*clientState, error) {
	// Sessions are resumed (quick reconnects), but only within one
	// state: a resumed session carries the certificates of its first
	// handshake, so after a reload the next connection makes a full
	// handshake with the new ones.
	st := &clientState{cfg: &tls.Config{
		MinVersion:         c.opts.minVersion(),
		ClientSessionCache: tls.NewLRUClientSessionCache(16),
	}}
	if c.opts.CA != "" {
		pool, err := loadPool(c.opts.CA)
		if err != nil {
			return nil, err
		}
		st.cfg.RootCAs = pool
	} else {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, err
		}
		st.cfg.RootCAs = pool
	}
	if c.opts.Cert != "" {
		cert, err := loadPair(c.opts.Cert, c.opts.Key)
		if err != nil {
			return nil, err
		}
		st.cert = &cert
		// Presented whatever CAs the server names, so that a server
		// with another CA can say why it refuses us.
		st.cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return st, nil
}

// Config is the configuration for a connection to addr (host:port, or a
// bare host) made now: the current state, with ServerName set to Name or
// else addr's host.
func (c *Client) Config(addr string) *tls.Config {
	cfg := c.state.Load().cfg.Clone()
	cfg.ServerName = c.serverName(addr)
	return cfg
}

func (c *Client) serverName(addr string) string {
	if c.opts.Name != "" {
		return c.opts.Name
	}
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Handshake runs the client side of the handshake over nc, a connection
// to addr, bounded by ctx. On failure nc is closed and the error is a
// *RefusedError.
func (c *Client) Handshake(ctx context.Context, nc net.Conn, addr string) (*tls.Conn, error) {
	cc := &countConn{Conn: nc}
	tc := tls.Client(cc, c.Config(addr))
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, refusal(addr, false, cc.n.Load(), err, ctx.Err() != nil)
	}
	return tc, nil
}

// Dial connects to addr over network ("tcp", "tcp4", "tcp6") and
// completes the handshake, all within timeout (0: none).
func (c *Client) Dial(ctx context.Context, network, addr string, timeout time.Duration) (*tls.Conn, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return c.Handshake(ctx, nc, addr)
}

// Dialer wraps dial, which connects to the server at addr, into one that
// also completes the TLS handshake within the same context. The
// connections it returns say why when the server refuses them after the
// handshake (in TLS 1.3 the server's verdict on the client certificate
// arrives with the first answer): such a read error is a *RefusedError.
func (c *Client) Dialer(addr string, dial func(context.Context) (net.Conn, error)) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		nc, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		tc, err := c.Handshake(ctx, nc, addr)
		if err != nil {
			return nil, err
		}
		return &explainConn{Conn: tc, peer: addr}, nil
	}
}

// explainConn turns an alert received after the handshake into a
// *RefusedError.
type explainConn struct {
	*tls.Conn
	peer string
}

func (c *explainConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && isAlert(err) {
		err = &RefusedError{Peer: c.peer, Cause: Cause(err, false), Err: err}
	}
	return n, err
}
