// SPDX-License-Identifier: Apache-2.0

package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options names the files and choices of one side of the link.
type Options struct {
	// Cert and Key are PEM files: the certificate chain (leaf first) and
	// its private key. Required for a Server; for a Client, both or
	// neither (a client certificate for a server that asks for one).
	Cert, Key string
	// CA is a PEM file of CA certificates. A Server given one requires
	// every client to present a certificate chaining to one of them
	// (mutual TLS). A Client verifies the server's certificate against
	// them; without one, against the system's roots.
	CA string
	// Name is what a Client expects the server's certificate to be valid
	// for (a DNS name or an IP address); empty: the host of the address.
	Name string
	// AllowTLS12 accepts TLS 1.2 as well as 1.3.
	AllowTLS12 bool
}

func (o Options) minVersion() uint16 {
	if o.AllowTLS12 {
		return tls.VersionTLS12
	}
	return tls.VersionTLS13
}

// loadPair reads a certificate chain and its key.
func loadPair(certFile, keyFile string) (tls.Certificate, error) {
	if err := checkKeyFile(keyFile); err != nil {
		return tls.Certificate{}, err
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return c, nil
}

// checkKeyFile refuses a private key that others may read or write, and
// one its group may read unless that group is keyGroup (Debian keeps
// keys 0640 root:ssl-cert, the group of the services allowed to use them).
func checkKeyFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("tlsconf: key file: %w", err)
	}
	perm := st.Mode().Perm()
	if perm&0o006 != 0 {
		return fmt.Errorf("tlsconf: key file %s has mode %04o: any user may read or write it; refusing it (chmod o-rw %s)",
			path, perm, path)
	}
	if perm&0o060 != 0 {
		if g := fileGroup(st); g != keyGroup {
			return fmt.Errorf("tlsconf: key file %s has mode %04o: group %s may read or write it; refusing it (chmod g-rw %s, or chgrp %s)",
				path, perm, g, path, keyGroup)
		}
	}
	return nil
}

// keyGroup is the one group allowed to read a private key file (a
// variable for the tests).
var keyGroup = "ssl-cert"

// fileGroup names the group owning the file (its number if unnamed).
func fileGroup(st os.FileInfo) string {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return "?"
	}
	gid := strconv.FormatUint(uint64(sys.Gid), 10)
	if g, err := user.LookupGroupId(gid); err == nil {
		return g.Name
	}
	return gid
}

// loadPool reads a PEM file of CA certificates.
func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: CA file %s, certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("tlsconf: CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// leafInfo describes a loaded certificate for the start-up and reload
// messages: subject and expiry.
func leafInfo(c *tls.Certificate) string {
	if c == nil || c.Leaf == nil {
		return ""
	}
	return fmt.Sprintf("%s, valid until %s", subject(c.Leaf), c.Leaf.NotAfter.UTC().Format(time.RFC3339))
}

func subject(c *x509.Certificate) string {
	if s := c.Subject.String(); s != "" {
		return s
	}
	if len(c.DNSNames) > 0 {
		return "DNS:" + strings.Join(c.DNSNames, ",")
	}
	return fmt.Sprintf("serial %s", c.SerialNumber)
}

var errNoCert = errors.New("tlsconf: a certificate needs both a certificate file and a key file")
