// SPDX-License-Identifier: Apache-2.0

package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// RefusedError is a failed handshake: who the peer was and, in words,
// why the connection was refused.
type RefusedError struct {
	Peer  string // the client's address (server side), the server's (client side)
	Cause string
	// Quiet: the peer closed before sending a byte (a port probe, a
	// health check); servers need not log it.
	Quiet bool
	Err   error // the error crypto/tls returned
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("TLS handshake with %s failed: %s", e.Peer, e.Cause)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// refusal classifies a handshake error. server: we are the server side;
// got: bytes received from the peer; timedOut: the deadline passed.
func refusal(peer string, server bool, got int64, err error, timedOut bool) *RefusedError {
	r := &RefusedError{Peer: peer, Err: err, Cause: Cause(err, server)}
	switch {
	case timedOut && server && got == 0:
		r.Cause = "the client sent no TLS handshake in time (a plaintext client waiting to send its first request?)"
	case timedOut:
		r.Cause = "the TLS handshake did not complete in time"
	case got == 0 && isClosed(err):
		if server {
			r.Cause, r.Quiet = "the client closed the connection before the TLS handshake", true
		} else {
			r.Cause = "the server closed the connection without answering the TLS handshake (a dc_server without -tlscert?)"
		}
	}
	return r
}

// Cause says in words why a TLS handshake or TLS read failed. server is
// true on the server side (the peer is a client). It is meant for errors
// from crypto/tls and falls back on the error's own text.
func Cause(err error, server bool) string {
	peer, ours := "server", "client"
	if server {
		peer, ours = "client", "server"
	}
	var (
		rh  tls.RecordHeaderError
		ve  *versionError
		ua  x509.UnknownAuthorityError
		ci  x509.CertificateInvalidError
		he  x509.HostnameError
		ae  tls.AlertError
		cve *tls.CertificateVerificationError
	)
	switch {
	case errors.Is(err, errNoClientCert):
		return "the client sent no certificate (-tlscert and -tlskey not given to it?)"
	case errors.As(err, &rh):
		if server {
			return "the client does not speak TLS (a plaintext client on a TLS listener?)"
		}
		return "the server does not speak TLS (a dc_server without -tlscert?)"
	case errors.As(err, &ve):
		return fmt.Sprintf("the %s offers at most %s; this %s requires %s (-tls12 allows TLS 1.2)",
			peer, tls.VersionName(ve.offered), ours, tls.VersionName(ve.min))
	case errors.As(err, &ua):
		return fmt.Sprintf("the %s's certificate %s is signed by %s, not by a CA in -tlsca",
			peer, certOf(err, ua.Cert), issuer(err, ua.Cert))
	case errors.As(err, &ci):
		switch ci.Reason {
		case x509.Expired:
			c := ci.Cert
			if time.Now().Before(c.NotBefore) {
				return fmt.Sprintf("the %s's certificate %s is not valid before %s", peer, subject(c), c.NotBefore.UTC().Format(time.RFC3339))
			}
			return fmt.Sprintf("the %s's certificate %s expired at %s", peer, subject(c), c.NotAfter.UTC().Format(time.RFC3339))
		case x509.IncompatibleUsage:
			return fmt.Sprintf("the %s's certificate %s is not for TLS %s authentication", peer, subject(ci.Cert), peer)
		}
		return fmt.Sprintf("the %s's certificate is invalid: %v", peer, ci)
	case errors.As(err, &he):
		return fmt.Sprintf("the server's certificate %s is not valid for %q (-tlsname sets the name expected)", subject(he.Certificate), he.Host)
	case errors.As(err, &cve):
		return fmt.Sprintf("the %s's certificate does not verify: %v", peer, cve.Err)
	case errors.As(err, &ae):
		return alertCause(uint8(ae), server)
	}
	// Alerts received over TCP come as "remote error: tls: <alert>".
	if s := err.Error(); strings.Contains(s, "remote error: tls: ") {
		return alertText(s[strings.Index(s, "remote error: tls: ")+len("remote error: tls: "):], server)
	}
	if isClosed(err) {
		return "the " + peer + " closed the connection during the TLS handshake"
	}
	return strings.TrimPrefix(err.Error(), "tls: ")
}

// alertCause and alertText say what an alert from the peer means.
func alertCause(a uint8, server bool) string {
	return alertText(strings.TrimPrefix(tls.AlertError(a).Error(), "tls: "), server)
}

func alertText(alert string, server bool) string {
	peer, what := "server", "our client certificate (or its absence)"
	if server {
		peer, what = "client", "our server certificate"
	}
	switch alert {
	case "bad certificate", "unknown certificate authority", "certificate required",
		"certificate expired", "unsupported certificate", "certificate revoked", "certificate unknown":
		return fmt.Sprintf("the %s refused %s: %s", peer, what, alert)
	case "protocol version not supported":
		return fmt.Sprintf("the %s refused the protocol version (one side requires TLS 1.3; -tls12 allows 1.2)", peer)
	}
	return fmt.Sprintf("the %s ended the handshake: %s", peer, alert)
}

func certOf(err error, c *x509.Certificate) string {
	if c == nil {
		var cve *tls.CertificateVerificationError
		if errors.As(err, &cve) && len(cve.UnverifiedCertificates) > 0 {
			c = cve.UnverifiedCertificates[0]
		}
	}
	if c == nil {
		return "(unknown)"
	}
	return subject(c)
}

func issuer(err error, c *x509.Certificate) string {
	if c == nil {
		var cve *tls.CertificateVerificationError
		if errors.As(err, &cve) && len(cve.UnverifiedCertificates) > 0 {
			c = cve.UnverifiedCertificates[0]
		}
	}
	if c == nil || c.Issuer.String() == "" {
		return "an unknown issuer"
	}
	return c.Issuer.String()
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// LooksLikeTLS reports whether the first bytes a plaintext server read
// are the start of a TLS handshake record (content type 22, version
// 3.x), so that it can say "a TLS client on a plaintext listener".
func LooksLikeTLS(b []byte) bool {
	return len(b) >= 3 && b[0] == 0x16 && b[1] == 0x03 && b[2] <= 0x04
}

// isAlert reports whether err is a TLS alert from the peer.
func isAlert(err error) bool {
	var ae tls.AlertError
	return errors.As(err, &ae) || strings.Contains(err.Error(), "remote error: tls: ")
}
