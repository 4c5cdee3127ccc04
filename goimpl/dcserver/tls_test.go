// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"bytes"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/tlsconf"
	"github.com/distcache-go/distcache/goimpl/tlsconf/tlstest"
)

// tapConn holds the client's writes while hold is set (to send them in
// one piece), and keeps every byte it reads.
type tapConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	out  bytes.Buffer
	in   bytes.Buffer
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		return c.out.Write(p)
	}
	return c.Conn.Write(p)
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.in.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = false
	_, err := c.Conn.Write(c.out.Bytes())
	return err
}

// countRecords counts the TLS records in b.
func countRecords(b []byte) int {
	n := 0
	for len(b) >= 5 {
		l := 5 + (int(b[3])<<8 | int(b[4]))
		if l > len(b) {
			break
		}
		b, n = b[l:], n+1
	}
	return n
}

// Pipelined requests that arrive over TLS in separate records, all at
// once, are answered together, as on plaintext: one write, not one per
// request.
func TestTLSPipelinedAnswersBatched(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	cert, key := ca.Issue(t, tlstest.Cert{CN: "server", Server: true}).Write(t, dir, "server")
	ts, err := tlsconf.NewServer(tlsconf.Options{Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	_, sock := serveT(t, Options{Store: cache.New(cache.Config{MaxSessions: 1000}).Store(), TLS: ts})
	raw, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tap := &tapConn{Conn: raw}
	pool := ca.Pool()
	tc := tls.Client(tap, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	// Let the session tickets arrive, then count from here.
	c := &client{t, tc, proto.NewReader(tc, proto.WantResponses)}
	c.send(1, proto.OpGet, []byte("warm"))
	c.recv()
	tap.mu.Lock()
	start := tap.in.Len()
	tap.hold = true
	tap.mu.Unlock()
	const n = 100
	for i := 0; i < n; i++ {
		c.send(uint32(100+i), proto.OpGet, []byte("missing"))
	}
	if err := tap.release(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if m := c.recv(); m.UID != uint32(100+i) {
			t.Fatalf("answer %d has uid %d", i, m.UID)
		}
	}
	tap.mu.Lock()
	records := countRecords(tap.in.Bytes()[start:])
	tap.mu.Unlock()
	if records > 5 {
		t.Fatalf("%d pipelined requests in %d records were answered in %d records, want a few", n, n, records)
	}
}
