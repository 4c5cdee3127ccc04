// SPDX-License-Identifier: Apache-2.0

package tlsconf

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/tlsconf/tlstest"
)

// pki is a CA with a server certificate, a client certificate, and files.
type pki struct {
	dir                      string
	ca                       *tlstest.CA
	caFile                   string
	srvCert, srvKey          string
	cliCert, cliKey          string
	otherCA                  *tlstest.CA
	otherCAFile              string
	strangerCert, strangerKy string // client certificate from otherCA
}

func newPKI(t *testing.T) *pki {
	p := &pki{dir: t.TempDir(), ca: tlstest.NewCA(t, "distcache test CA")}
	p.caFile = p.ca.Write(t, p.dir, "ca")
	p.srvCert, p.srvKey = p.ca.Issue(t, tlstest.Cert{CN: "dc_server", Server: true}).Write(t, p.dir, "server")
	p.cliCert, p.cliKey = p.ca.Issue(t, tlstest.Cert{CN: "web1", Client: true}).Write(t, p.dir, "client")
	p.otherCA = tlstest.NewCA(t, "someone else's CA")
	p.otherCAFile = p.otherCA.Write(t, p.dir, "other-ca")
	p.strangerCert, p.strangerKy = p.otherCA.Issue(t, tlstest.Cert{CN: "stranger", Client: true}).Write(t, p.dir, "stranger")
	return p
}

// echoServer accepts on loopback, handshakes with s, and echoes lines on
// the connections that pass; refusals go to the refused channel.
type echoServer struct {
	ln      net.Listener
	refused chan *RefusedError
	wg      sync.WaitGroup
}

func startEcho(t *testing.T, s *Server, timeout time.Duration) *echoServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln, refused: make(chan *RefusedError, 100)}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				tc, err := s.Handshake(nc, timeout)
				if err != nil {
					var r *RefusedError
					if !errors.As(err, &r) {
						t.Errorf("Handshake error %T %v is not a *RefusedError", err, err)
					}
					e.refused <- r
					return
				}
				defer tc.Close()
				io.Copy(tc, tc)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); e.wg.Wait() })
	return e
}

func (e *echoServer) addr() string { return e.ln.Addr().String() }

// nextRefusal waits for the server's next refusal.
func (e *echoServer) nextRefusal(t *testing.T) *RefusedError {
	t.Helper()
	select {
	case r := <-e.refused:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no refusal within 10 s")
		return nil
	}
}

func mustServer(t *testing.T, o Options) *Server {
	t.Helper()
	s, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustClient(t *testing.T, o Options) *Client {
	t.Helper()
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// roundTrip dials addr with c, sends a line and checks the echo.
func roundTrip(t *testing.T, c *Client, addr string) *tls.ConnectionState {
	t.Helper()
	tc, err := c.Dial(context.Background(), "tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer tc.Close()
	st, err := echoLine(tc)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	return st
}

func echoLine(tc *tls.Conn) (*tls.ConnectionState, error) {
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(tc, "hello\n"); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil {
		return nil, err
	}
	if line != "hello\n" {
		return nil, fmt.Errorf("echo %q", line)
	}
	st := tc.ConnectionState()
	return &st, nil
}

func TestMutualRoundTrip(t *testing.T) {
	p := newPKI(t)
	srv := mustServer(t, Options{Cert: p.srvCert, Key: p.srvKey, CA: p.caFile})
	e := startEcho(t, srv, 5*time.Second)
	cli := mustClient(t, Options{CA: p.caFile, Cert: p.cliCert, Key: p.cliKey})
	st := roundTrip(t, cli, e.addr())
	if st.Version != tls.VersionTLS13 {
		t.Fatalf("version %s, want TLS 1.3", tls.VersionName(st.Version))
	}
	if got := st.PeerCertificates[0].Subject.CommonName; got != "dc_server" {
		t.Fatalf("server certificate %q", got)
	}
	if !srv.Mutual() || !strings.Contains(srv.Describe(), "client certificates required") {
		t.Fatalf("Describe: %q", srv.Describe())
	}
	// By IP address as well as by name (the certificate has both).
	_, port, _ := net.SplitHostPort(e.addr())
	roundTrip(t, mustClient(t, Options{CA: p.caFile, Cert: p.cliCert, Key: p.cliKey, Name: "localhost"}), "127.0.0.1:"+port)
}

// Each refused client is refused with its own cause and its address, and a
// well-behaved client is served right after it.
func TestRefusals(t *testing.T) {
	p := newPKI(t)
	srv := mustServer(t, Options{Cert: p.srvCert, Key: p.srvKey, CA: p.caFile})
	e := startEcho(t, srv, 5*time.Second)
	good := mustClient(t, Options{CA: p.caFile, Cert: p.cliCert, Key: p.cliKey})
	expCert, expKey := p.ca.Issue(t, tlstest.Cert{CN: "web-expired", Client: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}).Write(t, p.dir, "expired")
	earlyCert, earlyKey := p.ca.Issue(t, tlstest.Cert{CN: "web-early", Client: true,
		NotBefore: time.Now().Add(time.Hour)}).Write(t, p.dir, "early")
	srvOnlyCert, srvOnlyKey := p.ca.Issue(t, tlstest.Cert{CN: "server-only", Server: true}).Write(t, p.dir, "srvonly")

	tlsClient := func(o Options) func(t *testing.T) (string, error) {
		return func(t *testing.T) (string, error) {
			c := mustClient(t, o)
			nc, err := net.Dial("tcp", e.addr())
			if err != nil {
				t.Fatal(err)
			}
			local := nc.LocalAddr().String()
			tc, err := c.Handshake(context.Background(), nc, e.addr())
			if err == nil {
				// TLS 1.3: the server's verdict on our certificate
				// arrives after our side of the handshake.
				_, err = echoLine(tc)
				tc.Close()
			}
			return local, err
		}
	}
	tests := []struct {
		name       string
		dial       func(t *testing.T) (string, error)
		wantServer string // in the server's refusal cause
		wantClient string // in the client's error ("" = not checked)
	}{
		{"plaintext client", func(t *testing.T) (string, error) {
			nc, err := net.Dial("tcp", e.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			// A distcache request frame.
			nc.Write([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 1, 0, 0, 0, 0, 0})
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.ReadAll(nc)
			return nc.LocalAddr().String(), err
		}, "the client does not speak TLS (a plaintext client on a TLS listener?)", ""},
		{"no client certificate", tlsClient(Options{CA: p.caFile}),
			"the client sent no certificate", "the server refused our client certificate (or its absence): bad certificate"},
		{"unknown CA", tlsClient(Options{CA: p.caFile, Cert: p.strangerCert, Key: p.strangerKy}),
			"the client's certificate CN=stranger is signed by CN=someone else's CA, not by a CA in -tlsca", "the server refused our client certificate"},
		{"expired client certificate", tlsClient(Options{CA: p.caFile, Cert: expCert, Key: expKey}),
			"the client's certificate CN=web-expired expired at", "the server refused"},
		{"client certificate not yet valid", tlsClient(Options{CA: p.caFile, Cert: earlyCert, Key: earlyKey}),
			"the client's certificate CN=web-early is not valid before", ""},
		{"server-only certificate as client", tlsClient(Options{CA: p.caFile, Cert: srvOnlyCert, Key: srvOnlyKey}),
			"the client's certificate CN=server-only is not for TLS client authentication", ""},
		{"client does not trust the server", tlsClient(Options{CA: p.otherCAFile, Cert: p.cliCert, Key: p.cliKey}),
			"the client refused our server certificate: bad certificate",
			"the server's certificate CN=dc_server is signed by CN=distcache test CA, not by a CA in -tlsca"},
		{"wrong server name", tlsClient(Options{CA: p.caFile, Cert: p.cliCert, Key: p.cliKey, Name: "cache.example"}),
			"the client refused our server certificate: bad certificate",
			`the server's certificate CN=dc_server is not valid for "cache.example" (-tlsname`},
		{"TLS 1.2 client", func(t *testing.T) (string, error) {
			nc, err := net.Dial("tcp", e.addr())
			if err != nil {
				t.Fatal(err)
			}
			cfg := mustClient(t, Options{CA: p.caFile, Cert: p.cliCert, Key: p.cliKey}).Config(e.addr())
			cfg.MaxVersion = tls.VersionTLS12
			cfg.MinVersion = tls.VersionTLS12
			tc := tls.Client(nc, cfg)
			err = tc.Handshake()
			tc.Close()
			return nc.LocalAddr().String(), err
		}, "the client offers at most TLS 1.2; this server requires TLS 1.3 (-tls12 allows TLS 1.2)", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			local, err := tc.dial(t)
			if err == nil && tc.wantClient != "" {
				t.Fatal("the client was served")
			}
			r := e.nextRefusal(t)
			if r.Peer != local {
				t.Errorf("refusal names peer %q, want %q", r.Peer, local)
			}
			if r.Quiet || !strings.Contains(r.Cause, tc.wantServer) {
				t.Errorf("server cause %q (quiet %v), want it to contain %q", r.Cause, r.Quiet, tc.wantServer)
			}
			if tc.wantClient != "" {
				cause := Cause(err, false)
				var rc *RefusedError
				if errors.As(err, &rc) {
					cause = rc.Cause
				}
				if !strings.Contains(cause, tc.wantClient) {
					t.Errorf("client cause %q (from %v), want it to contain %q", cause, err, tc.wantClient)
				}
			}
			roundTrip(t, good, e.addr())
		})
	}
	select {
	case r := <-e.refused:
		t.Fatalf("unexpected refusal: %v", r)
	default:
	}
}

func TestTLS12Allowed(t *testing.T) {
	p := newPKI(t)
	srv := mustServer(t, Options{Cert: p.srvCert, Key: p.srvKey, CA: p.caFile, AllowTLS12: true})
	e := startEcho(t, srv, 5*time.Second)
	c := mustClient(t, Options{CA: p.caFile, Cert: p.cliCert, Key: p.cliKey, AllowTLS12: true})
	nc, err := net.Dial("tcp", e.addr())
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.Config(e.addr())
	cfg.MaxVersion = tls.VersionTLS12
	tc := tls.Client(nc, cfg)
	defer tc.Close()
	st, err := echoLine(tc)
	if err != nil || st.Version != tls.VersionTLS12 {
		t.Fatalf("TLS 1.2 with AllowTLS12: %v", err)
	}
	// A client insisting on 1.3 still gets 1.3 from the same server.
	if st := roundTrip(t, c, e.addr()); st.Version != tls.VersionTLS13 {
		t.Fatalf("version %s", tls.VersionName(st.Version))
	}
}

func TestClientSide(t *testing.T) {
	p := newPKI(t)
	c := mustClient(t, Options{CA: p.caFile, Cert: p.cliCert, Key: p.cliKey})
	t.Run("plaintext server that closes", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		go func() {
			nc, err := ln.Accept()
			if err == nil {
				nc.Read(make([]byte, 100)) // a corrupt frame to a dc_server
				nc.Close()
			}
		}()
		_, err := c.Dial(context.Background(), "tcp", ln.Addr().String(), 5*time.Second)
		var r *RefusedError
		if !errors.As(err, &r) || r.Peer != ln.Addr().String() ||
			!strings.Contains(r.Cause, "the server closed the connection without answering the TLS handshake (a dc_server without -tlscert?)") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("plaintext server that answers", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		go func() {
			nc, err := ln.Accept()
			if err == nil {
				nc.Read(make([]byte, 100))
				nc.Write([]byte{0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 7, 1, 0, 0, 0, 0})
				nc.Close()
			}
		}()
		_, err := c.Dial(context.Background(), "tcp", ln.Addr().String(), 5*time.Second)
		var r *RefusedError
		if !errors.As(err, &r) || !strings.Contains(r.Cause, "the server does not speak TLS") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("server that never answers", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		done := make(chan struct{})
		defer close(done)
		go func() {
			nc, err := ln.Accept()
			if err == nil {
				<-done
				nc.Close()
			}
		}()
		_, err := c.Dial(context.Background(), "tcp", ln.Addr().String(), 200*time.Millisecond)
		var r *RefusedError
		if !errors.As(err, &r) || r.Cause != "the TLS handshake did not complete in time" {
			t.Fatalf("got %v", err)
		}
	})
}

func TestServerTimeoutAndProbe(t *testing.T) {
	p := newPKI(t)
	e := startEcho(t, mustServer(t, Options{Cert: p.srvCert, Key: p.srvKey}), 300*time.Millisecond)
	nc, err := net.Dial("tcp", e.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := e.nextRefusal(t) // nothing sent
	if r.Cause != "the client sent no TLS handshake in time (a plaintext client waiting to send its first request?)" || r.Quiet {
		t.Fatalf("silent client: %+v", r)
	}
	// Part of a ClientHello, then nothing.
	half, err := net.Dial("tcp", e.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	half.Write([]byte{0x16, 0x03, 0x01, 0x01, 0x00, 0x01})
	if r := e.nextRefusal(t); r.Cause != "the TLS handshake did not complete in time" {
		t.Fatalf("stalled handshake: %+v", r)
	}
	probe, err := net.Dial("tcp", e.addr())
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	if r := e.nextRefusal(t); !r.Quiet {
		t.Fatalf("port probe: %+v, want Quiet", r)
	}
	// Without -tlsca no client certificate is asked for: on a server with
	// a handshake timeout of 10 s (at load 20 a handshake under -race
	// outlasted the 300 ms above: "the server closed the connection
	// without answering the TLS handshake").
	e2 := startEcho(t, mustServer(t, Options{Cert: p.srvCert, Key: p.srvKey}), 10*time.Second)
	roundTrip(t, mustClient(t, Options{CA: p.caFile}), e2.addr())
}

func mustStat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestLoadErrors(t *testing.T) {
	p := newPKI(t)
	worldKey := p.dir + "/world.key"
	b, _ := os.ReadFile(p.srvKey)
	os.WriteFile(worldKey, b, 0o600)
	os.Chmod(worldKey, 0o644)
	groupKey := p.dir + "/group.key"
	os.WriteFile(groupKey, b, 0o600)
	os.Chmod(groupKey, 0o640)
	notPEM := p.dir + "/junk.pem"
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no cert", Options{Key: p.srvKey}, "needs both a certificate file and a key file"},
		{"world-readable key", Options{Cert: p.srvCert, Key: worldKey},
			"key file " + worldKey + " has mode 0644: any user may read or write it; refusing it (chmod o-rw " + worldKey + ")"},
		{"group-readable key, group not ssl-cert", Options{Cert: p.srvCert, Key: groupKey},
			"key file " + groupKey + " has mode 0640: group " + fileGroup(mustStat(t, groupKey)) + " may read or write it; refusing it"},
		{"key of another certificate", Options{Cert: p.srvCert, Key: p.cliKey}, "private key does not match public key"},
		{"missing CA", Options{Cert: p.srvCert, Key: p.srvKey, CA: p.dir + "/none"}, "no such file"},
		{"CA without certificates", Options{Cert: p.srvCert, Key: p.srvKey, CA: notPEM}, "holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewServer(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A key its group may read is accepted when that group is the key
	// group (Debian's ssl-cert convention; here the file's own group).
	defer func(g string) { keyGroup = g }(keyGroup)
	keyGroup = fileGroup(mustStat(t, groupKey))
	if _, err := NewServer(Options{Cert: p.srvCert, Key: groupKey}); err != nil {
		t.Fatalf("group-readable key in the key group: %v", err)
	}
	if _, err := NewClient(Options{Cert: p.cliCert}); err == nil {
		t.Fatal("client certificate without key accepted")
	}
}

// Reload swaps certificates for new handshakes; connections made before
// carry on; a broken file keeps the previous state.
func TestServerReload(t *testing.T) {
	p := newPKI(t)
	srv := mustServer(t, Options{Cert: p.srvCert, Key: p.srvKey, CA: p.caFile})
	e := startEcho(t, srv, 5*time.Second)
	cli := mustClient(t, Options{CA: p.caFile, Cert: p.cliCert, Key: p.cliKey})
	old, err := cli.Dial(context.Background(), "tcp", e.addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	first := roundTrip(t, cli, e.addr()).PeerCertificates[0].SerialNumber

	renewed := p.ca.Issue(t, tlstest.Cert{CN: "dc_server", Server: true})
	renewed.Write(t, p.dir, "server")
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	// A new client: cli may resume its session, which keeps the identity
	// of its first handshake.
	fresh := func() *Client { return mustClient(t, Options{CA: p.caFile, Cert: p.cliCert, Key: p.cliKey}) }
	if got := roundTrip(t, fresh(), e.addr()).PeerCertificates[0].SerialNumber; got.Cmp(renewed.Leaf.SerialNumber) != 0 || got.Cmp(first) == 0 {
		t.Fatalf("after reload the server presents serial %v, want %v", got, renewed.Leaf.SerialNumber)
	}
	if _, err := echoLine(old); err != nil {
		t.Fatalf("connection made before the reload: %v", err)
	}

	tlstest.WriteFile(t, p.srvKey, []byte("broken"))
	if err := srv.Reload(); err == nil {
		t.Fatal("reload of a broken key succeeded")
	}
	if got := roundTrip(t, fresh(), e.addr()).PeerCertificates[0].SerialNumber; got.Cmp(renewed.Leaf.SerialNumber) != 0 {
		t.Fatal("a failed reload changed the certificate")
	}

	// A new CA file: clients of the old CA are refused from now on, and
	// clients of the new one served.
	trust := p.ca.Write(t, p.dir, "client-trust")
	tlstest.WriteFile(t, p.caFile, p.otherCA.PEM)
	renewed.Write(t, p.dir, "server")
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	oldCA := mustClient(t, Options{CA: trust, Cert: p.cliCert, Key: p.cliKey})
	if tc, err := oldCA.Dial(context.Background(), "tcp", e.addr(), 5*time.Second); err == nil {
		if _, err := echoLine(tc); err == nil {
			t.Fatal("a client of the retired CA was served")
		}
		tc.Close()
	}
	if r := e.nextRefusal(t); !strings.Contains(r.Cause, "CN=web1 is signed by CN=distcache test CA, not by a CA in -tlsca") {
		t.Fatalf("refusal after the CA change: %q", r.Cause)
	}
	roundTrip(t, mustClient(t, Options{CA: trust, Cert: p.strangerCert, Key: p.strangerKy}), e.addr())
	// Nor can a client of the retired CA resume a session it holds: the
	// client certificate of a resumed session is checked again.
	tc, err := cli.Dial(context.Background(), "tcp", e.addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !tc.ConnectionState().DidResume {
		t.Fatal("the client did not try to resume its session")
	}
	if _, err := echoLine(tc); err == nil {
		t.Fatal("a resumed session of the retired CA was served")
	}
	tc.Close()
	if r := e.nextRefusal(t); !strings.Contains(r.Cause, "CN=web1 is signed by CN=distcache test CA, not by a CA in -tlsca") {
		t.Fatalf("refusal of the resumed session: %q", r.Cause)
	}
	if _, err := echoLine(old); err != nil {
		t.Fatalf("connection made before the reloads: %v", err)
	}
}

// Handshakes keep succeeding while the certificates are reloaded over and
// over.
func TestReloadUnderLoad(t *testing.T) {
	p := newPKI(t)
	srv := mustServer(t, Options{Cert: p.srvCert, Key: p.srvKey, CA: p.caFile})
	e := startEcho(t, srv, 5*time.Second)
	cli := mustClient(t, Options{CA: p.caFile, Cert: p.cliCert, Key: p.cliKey})
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tc, err := cli.Dial(context.Background(), "tcp", e.addr(), 5*time.Second)
				if err == nil {
					_, err = echoLine(tc)
					tc.Close()
				}
				if err != nil {
					t.Errorf("request during reloads: %v", err)
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	for i := 0; i < 20; i++ {
		p.ca.Issue(t, tlstest.Cert{CN: fmt.Sprint("dc_server-", i), Server: true}).Write(t, p.dir, "server")
		if err := srv.Reload(); err != nil {
			t.Fatal(err)
		}
		if err := cli.Reload(); err != nil {
			t.Fatal(err)
		}
		// Wait for at least one more successful request per reload.
		for n := ok.Load(); ok.Load() == n && failed.Load() == 0; {
			time.Sleep(time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 20 {
		t.Fatalf("%d requests failed, %d succeeded", failed.Load(), ok.Load())
	}
}

func TestClientReload(t *testing.T) {
	p := newPKI(t)
	var seen atomic.Pointer[string]
	srv := mustServer(t, Options{Cert: p.srvCert, Key: p.srvKey, CA: p.caFile})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			tc, err := srv.Handshake(nc, 5*time.Second)
			if err != nil {
				continue
			}
			cn := tc.ConnectionState().PeerCertificates[0].Subject.CommonName
			seen.Store(&cn)
			tc.Write([]byte("x"))
			tc.Close()
		}
	}()
	cli := mustClient(t, Options{CA: p.caFile, Cert: p.cliCert, Key: p.cliKey})
	dialCN := func() string {
		tc, err := cli.Dial(context.Background(), "tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		if _, err := tc.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		return *seen.Load()
	}
	if cn := dialCN(); cn != "web1" {
		t.Fatalf("client certificate %q", cn)
	}
	p.ca.Issue(t, tlstest.Cert{CN: "web1-renewed", Client: true}).Write(t, p.dir, "client")
	if err := cli.Reload(); err != nil {
		t.Fatal(err)
	}
	if cn := dialCN(); cn != "web1-renewed" {
		t.Fatalf("after reload the client presents %q", cn)
	}
	if !strings.Contains(cli.Describe(), "CN=web1-renewed") {
		t.Fatalf("Describe: %q", cli.Describe())
	}
}

func TestLooksLikeTLS(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want bool
	}{
		{[]byte{0x16, 0x03, 0x01, 0x02, 0x00}, true},
		{[]byte{0x16, 0x03, 0x03}, true},
		{[]byte{0, 0, 0, 1}, false},
		{[]byte{0x16, 0x03}, false},
		{[]byte("GET / HTTP/1.1"), false},
	} {
		if got := LooksLikeTLS(tc.b); got != tc.want {
			t.Errorf("LooksLikeTLS(% x) = %v, want %v", tc.b, got, tc.want)
		}
	}
}

// A connection made by Dialer says why the server refused it after the
// handshake (TLS 1.3 sends the verdict on the client certificate late).
func TestDialerExplainsLateRefusal(t *testing.T) {
	p := newPKI(t)
	e := startEcho(t, mustServer(t, Options{Cert: p.srvCert, Key: p.srvKey, CA: p.caFile}), 5*time.Second)
	raw := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", e.addr())
	}
	for _, tc := range []struct {
		name string
		o    Options
		want string // "" = served
	}{
		{"good", Options{CA: p.caFile, Cert: p.cliCert, Key: p.cliKey}, ""},
		{"no certificate", Options{CA: p.caFile}, "the server refused our client certificate (or its absence): bad certificate"},
		{"stranger", Options{CA: p.caFile, Cert: p.strangerCert, Key: p.strangerKy}, "the server refused our client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := mustClient(t, tc.o).Dialer(e.addr(), raw)(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			nc.Write([]byte("x"))
			_, err = nc.Read(make([]byte, 1))
			var r *RefusedError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("good client: %v", err)
			case tc.want != "" && (!errors.As(err, &r) || !strings.Contains(r.Cause, tc.want) || r.Peer != e.addr()):
				t.Fatalf("got %v, want a refusal by %s saying %q", err, e.addr(), tc.want)
			}
			if tc.want != "" {
				e.nextRefusal(t)
			}
		})
	}
}
