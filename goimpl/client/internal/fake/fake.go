// SPDX-License-Identifier: Apache-2.0

// Package fake is a test-only distcache server for goimpl/client's tests:
// a map (or a real cache) behind the wire protocol, with switchable
// misbehaviours.
package fake

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/server"
)

type Mode int32

const (
	ModeNormal     Mode = iota
	ModeSilent          // read requests, never answer
	ModeEmpty           // answer every request with an empty payload (dc_client, no upstream)
	ModeDisconn         // answer 0x02 (dc_client, upstream lost)
	ModeWrongUID        // answer with uid+1
	ModeWrongOp         // answer with another operation
	ModeBadLevel        // answer with protocol level 0x0010 (corrupt)
	ModeExtra           // answer, then send a second, unsolicited response
	ModeCloseIdle       // answer, then close the connection (an idle timeout of 0)
	ModeOneShot         // answer a connection's first request; close at its second, unanswered
	ModeHalfAnswer      // answer a connection's first request; send half an answer to its second, close
)

type Store struct {
	mu sync.Mutex
	m  map[string][]byte // guarded by mu
	// Real, when set, answers instead of the map: the server package's
	// request handler and cache.
	Real server.Cache
}

func NewStore() *Store { return &Store{m: map[string][]byte{}} }

type Server struct {
	t      testing.TB
	ln     net.Listener
	Target string
	store  *Store

	mode atomic.Int32
	// Delay: nanoseconds each answer waits before it is written (a slow
	// server)
	Delay       atomic.Int64
	Accepts     atomic.Int32
	Requests    atomic.Int32
	LastTimeout atomic.Uint32

	readers sync.Pool // *swapReader, so that a connection per request stays cheap

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// ShortTempDir returns a directory with a path short enough for sun_path.
func ShortTempDir(t testing.TB) string {
	d, err := os.MkdirTemp("", "dcc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Start listens on network "unix" (at path, or a fresh one if "") or
// "tcp" (at addr, or a fresh loopback port if "").
func Start(t testing.TB, network, where string, store *Store) *Server {
	t.Helper()
	if store == nil {
		store = NewStore()
	}
	var ln net.Listener
	var err error
	s := &Server{t: t, store: store, conns: map[net.Conn]bool{}}
	switch network {
	case "unix":
		if where == "" {
			where = filepath.Join(ShortTempDir(t), "s")
		}
		ln, err = net.Listen("unix", where)
		s.Target = "UNIX:" + where
	case "tcp":
		if where == "" {
			where = "127.0.0.1:0"
		}
		ln, err = net.Listen("tcp4", where)
		if err == nil {
			s.Target = "IP:" + ln.Addr().String()
		}
	default:
		t.Fatalf("network %q", network)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.acceptLoop()
	t.Cleanup(s.Stop)
	return s
}

// where returns what Start needs to listen at the same place again.
func (s *Server) Where() string {
	if a, ok := s.ln.Addr().(*net.UnixAddr); ok {
		return a.Name
	}
	return s.ln.Addr().String()
}

func (s *Server) SetMode(m Mode) { s.mode.Store(int32(m)) }

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.Accepts.Add(1)
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

// Stop closes the listener and every connection and waits for the
// goroutines. Safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	sr, _ := s.readers.Get().(*swapReader)
	if sr == nil {
		sr = &swapReader{}
		sr.rd = proto.NewReader(sr, proto.WantRequests)
	}
	sr.c = c
	rd := sr.rd
	clean := false
	defer func() {
		if clean {
			sr.c = nil
			s.readers.Put(sr)
		}
	}()
	var out []byte
	for n := 0; ; n++ {
		m, err := rd.ReadMessage()
		if err != nil {
			clean = err == io.EOF
			return
		}
		s.Requests.Add(1)
		resp := proto.Message{Response: true, UID: m.UID, Op: m.Op}
		mode := Mode(s.mode.Load())
		if mode == ModeOneShot && n > 0 {
			return
		}
		switch mode {
		case ModeSilent:
			continue
		case ModeEmpty:
		case ModeDisconn:
			resp.Payload = []byte{proto.ResultDisconnected}
		default:
			p, ok := s.handle(m)
			if !ok {
				return
			}
			resp.Payload = p
		}
		switch mode {
		case ModeWrongUID:
			resp.UID++
		case ModeWrongOp:
			resp.Op = (resp.Op + 1) % 4
		}
		out, err = proto.AppendMessage(out[:0], &resp)
		if err != nil {
			s.t.Errorf("fake server: %v", err)
			return
		}
		if mode == ModeBadLevel {
			out[1] = 0x10
		}
		if mode == ModeExtra {
			out = append(out, out...)
		}
		if mode == ModeHalfAnswer && n > 0 {
			out = out[:len(out)/2]
		}
		if d := time.Duration(s.Delay.Load()); d > 0 {
			time.Sleep(d)
		}
		if _, err := c.Write(out); err != nil {
			return
		}
		if mode == ModeCloseIdle || mode == ModeHalfAnswer && n > 0 {
			return
		}
	}
}

// swapReader lets one proto.Reader (and its buffer) serve one connection
// after another.
type swapReader struct {
	c  net.Conn
	rd *proto.Reader
}

func (r *swapReader) Read(p []byte) (int, error) { return r.c.Read(p) }

// handle answers one request from the map; ok false closes the connection.
func (s *Server) handle(m *proto.Message) ([]byte, bool) {
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.Real != nil {
		if m.Op == proto.OpAdd {
			if req, _, ok := proto.ParseAddRequest(m.Payload); ok {
				s.LastTimeout.Store(req.TimeoutMS)
			}
		}
		return server.Handle(st.Real, time.Now(), m, nil)
	}
	switch m.Op {
	case proto.OpAdd:
		req, code, ok := proto.ParseAddRequest(m.Payload)
		if !ok {
			return nil, false
		}
		s.LastTimeout.Store(req.TimeoutMS)
		if code != proto.ResultOK {
			return []byte{code}, true
		}
		if _, dup := st.m[string(req.ID)]; dup {
			return []byte{proto.AddErrMatching}, true
		}
		st.m[string(req.ID)] = append([]byte(nil), req.Data...)
		return []byte{proto.ResultOK}, true
	case proto.OpGet:
		if d, ok := st.m[string(m.Payload)]; ok {
			return d, true
		}
		return []byte{proto.ResultNotOK}, true
	case proto.OpRemove:
		if _, ok := st.m[string(m.Payload)]; ok {
			delete(st.m, string(m.Payload))
			return []byte{proto.ResultOK}, true
		}
		return []byte{proto.ResultNotOK}, true
	case proto.OpHave:
		if _, ok := st.m[string(m.Payload)]; ok {
			return []byte{proto.ResultOK}, true
		}
		return []byte{proto.ResultNotOK}, true
	}
	return nil, false
}

// Put stores data under id directly.
func (st *Store) Put(id, data []byte) {
	st.mu.Lock()
	st.m[string(id)] = data
	st.mu.Unlock()
}

// WaitFor polls cond until it holds, failing the test after 10 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
