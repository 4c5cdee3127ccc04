// SPDX-License-Identifier: Apache-2.0

package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distcache-go/distcache/internal/daemontest"
)

// Two tlsfarm instances on one dc_server: a client's session made on the
// first resumes on the second.
func TestTwoInstances(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := writeCert(t, dir)
	bin := filepath.Join(dir, "tlsfarm")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dc := daemontest.Start(t, "dc_server")
	var addrs []string
	for i := 0; i < 2; i++ {
		addr := freeAddr(t)
		cmd := exec.Command(bin, "-listen", addr, "-cert", certFile, "-key", keyFile, "-cache", dc.Addr)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		addrs = append(addrs, addr)
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "farm.test",
			ClientSessionCache: tls.NewLRUClientSessionCache(4)},
		DisableKeepAlives: true,
	}}
	get := func(addr string) string {
		end := time.Now().Add(20 * time.Second)
		for {
			resp, err := client.Get("https://" + addr + "/")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return strings.TrimSpace(string(b))
			}
			if time.Now().After(end) {
				t.Fatalf("GET %s: %v", addr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got := get(addrs[0]); got != "resumed: false" {
		t.Fatalf("first instance: %q", got)
	}
	if got := get(addrs[1]); got != "resumed: true" {
		t.Fatalf("second instance: %q, want a resumed session", got)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeCert(t *testing.T, dir string) (string, string, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "farm.test"},
		DNSNames: []string{"farm.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return certFile, keyFile, pool
}
