// SPDX-License-Identifier: Apache-2.0

package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"
)

// Server is the TLS side of a listener. Its Config goes to tls.Server (or
// Handshake does that); Reload swaps the certificates under it.
type Server struct {
	opts  Options
	state atomic.Pointer[serverState]
	cfg   *tls.Config
}

// serverState is one load of the server's files.
type serverState struct {
	cfg  *tls.Config
	cert *tls.Certificate
	cas  *x509.CertPool // nil: no client certificates asked for
}

// NewServer loads the server's files: o.Cert and o.Key, and o.CA when
// clients must present certificates.
func NewServer(o Options) (*Server, error) {
	if o.Cert == "" || o.Key == "" {
		return nil, errNoCert
	}
	s := &Server{opts: o}
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	s.cfg = &tls.Config{
		MinVersion:         o.minVersion(),
		GetConfigForClient: s.configFor,
	}
	return s, nil
}

// Mutual reports whether clients must present a certificate.
func (s *Server) Mutual() bool { return s.opts.CA != "" }

// Config is the configuration to serve with. It stays valid across
// Reloads: every handshake uses the state current when it starts.
func (s *Server) Config() *tls.Config { return s.cfg }

// Describe says what the server presents, for a start-up or reload line.
func (s *Server) Describe() string {
	st := s.state.Load()
	d := "certificate " + leafInfo(st.cert)
	if st.cas != nil {
		d += "; client certificates required (CA " + s.opts.CA + ")"
	}
	return d
}

// Reload reads the files again. If any fails to load, the previous
// certificates stay in use and the error says why.
func (s *Server) Reload() error {
	st, err := s.load()
	if err != nil {
		return err
	}
	s.state.Store(st)
	return nil
}

func (s *Server) load() (*serverState, error) {
	cert, err := loadPair(s.opts.Cert, s.opts.Key)
	if err != nil {
		return nil, err
	}
	st := &serverState{cert: &cert}
	if s.opts.CA != "" {
		if st.cas, err = loadPool(s.opts.CA); err != nil {
			return nil, err
		}
	}
	st.cfg = &tls.Config{
		MinVersion:   s.opts.minVersion(),
		Certificates: []tls.Certificate{cert},
	}
	if st.cas != nil {
		// The client's certificate is asked for, and checked in
		// VerifyConnection (also on resumption) so that each cause of a
		// refusal gets its own error.
		st.cfg.ClientAuth = tls.RequestClientCert
		st.cfg.ClientCAs = st.cas
		cas := st.cas
		st.cfg.VerifyConnection = func(cs tls.ConnectionState) error { return verifyClient(cas, cs) }
	}
	return st, nil
}

// configFor picks the current state for a new handshake, and refuses a
// client that offers only protocol versions we do not accept.
func (s *Server) configFor(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if min := s.opts.minVersion(); len(hello.SupportedVersions) > 0 && slices.Max(hello.SupportedVersions) < min {
		return nil, &versionError{offered: slices.Max(hello.SupportedVersions), min: min}
	}
	return s.state.Load().cfg, nil
}

type versionError struct{ offered, min uint16 }

func (e *versionError) Error() string {
	return fmt.Sprintf("tlsconf: peer offers at most %s, %s is required", tls.VersionName(e.offered), tls.VersionName(e.min))
}

var errNoClientCert = errors.New("tlsconf: no client certificate")

// verifyClient checks the client's chain against the CAs, for client
// authentication, at the current time.
func verifyClient(cas *x509.CertPool, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errNoClientCert
	}
	opts := x509.VerifyOptions{
		Roots:         cas,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return nil
}

// Handshake runs the server side of the handshake on nc, bounded by
// timeout (0: none). On failure nc is closed and the error is a
// *RefusedError; Quiet is set on it when the peer went away before
// sending anything (a port probe), which is not worth a log line.
func (s *Server) Handshake(nc net.Conn, timeout time.Duration) (*Conn, error) {
	rc := &recordConn{Conn: nc}
	tc := tls.Server(rc, s.cfg)
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, refusal(peerOf(nc), true, rc.got.Load(), err, ctx.Err() != nil)
	}
	return &Conn{Conn: tc, rc: rc}, nil
}

// countConn counts the bytes read from the peer, so that a peer that
// closes before saying anything can be told from one that failed.
type countConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func peerOf(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		return a.String()
	}
	return "local client"
}
