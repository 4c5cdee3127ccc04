// SPDX-License-Identifier: Apache-2.0

package redisstore

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/redisstore/redistest"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/tlsconf"
	"github.com/distcache-go/distcache/goimpl/tlsconf/tlstest"
)

// TestTLS: rediss:// to a server that requires client certificates, with
// the configuration from tlsconf; without a client certificate, or
// trusting another CA, every operation fails as unavailable.
func TestTLS(t *testing.T) {
	redistest.Require(t)
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "redis test CA")
	caFile := ca.Write(t, dir, "ca")
	srvCert, srvKey := ca.Issue(t, tlstest.Cert{CN: "redis", Server: true}).Write(t, dir, "server")
	cliCert, cliKey := ca.Issue(t, tlstest.Cert{CN: "dc_client", Client: true}).Write(t, dir, "client")
	other := tlstest.NewCA(t, "another CA").Write(t, dir, "other")
	tp := redistest.FreePort(t)
	srv := redistest.Start(t, "--tls-port", strconv.Itoa(tp), "--tls-cert-file", srvCert,
		"--tls-key-file", srvKey, "--tls-ca-cert-file", caFile, "--tls-auth-clients", "yes")
	addr := "rediss://127.0.0.1:" + strconv.Itoa(tp)
	_ = srv

	good, err := tlsconf.NewClient(tlsconf.Options{CA: caFile, Cert: cliCert, Key: cliKey, AllowTLS12: true})
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, addr, Options{TLS: good.Config})
	defer s.Close()
	if err := s.Add(bg, []byte("tls"), []byte("over TLS"), time.Hour); err != nil {
		t.Fatalf("Add over TLS: %v", err)
	}
	if d, err := s.Get(bg, []byte("tls"), nil); err != nil || string(d) != "over TLS" {
		t.Fatalf("Get over TLS = %q, %v", d, err)
	}

	for name, o := range map[string]tlsconf.Options{
		"no client certificate": {CA: caFile, AllowTLS12: true},
		"another CA":            {CA: other, Cert: cliCert, Key: cliKey, AllowTLS12: true},
	} {
		c, err := tlsconf.NewClient(o)
		if err != nil {
			t.Fatal(err)
		}
		bad := open(t, addr, Options{TLS: c.Config, Timeout: 200 * time.Millisecond})
		if err := bad.Have(bg, []byte("tls")); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s: Have = %v, want ErrUnavailable", name, err)
		}
		bad.Close()
	}
}
