package client

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

// A test-only distcache server: a map behind the wire protocol, with
// switchable misbehaviours.

type fakeMode int32

const (
	modeNormal   fakeMode = iota
	modeSilent            // read requests, never answer
	modeEmpty             // answer every request with an empty payload (dc_client, no upstream)
	modeDisconn           // answer 0x02 (dc_client, upstream lost)
	modeWrongUID          // answer with uid+1
	modeWrongOp           // answer with another operation
	modeBadLevel          // answer with protocol level 0x0010 (corrupt)
	modeExtra             // answer, then send a second, unsolicited response
)

type fakeStore struct {
	mu sync.Mutex
	m  map[string][]byte
	// real, when set, answers instead of the map: the server package's
	// request handler and cache.
	real server.Cache
}

func newFakeStore() *fakeStore { return &fakeStore{m: map[string][]byte{}} }

type fakeServer struct {
	t      testing.TB
	ln     net.Listener
	target string
	store  *fakeStore

	mode        atomic.Int32
	accepts     atomic.Int32
	requests    atomic.Int32
	lastTimeout atomic.Uint32

	readers sync.Pool // *swapReader, so that a connection per request stays cheap

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// shortTempDir returns a directory with a path short enough for sun_path.
func shortTempDir(t testing.TB) string {
	d, err := os.MkdirTemp("", "dcc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// startFake listens on network "unix" (at path, or a fresh one if "") or
// "tcp" (at addr, or a fresh loopback port if "").
func startFake(t testing.TB, network, where string, store *fakeStore) *fakeServer {
	t.Helper()
	if store == nil {
		store = newFakeStore()
	}
	var ln net.Listener
	var err error
	s := &fakeServer{t: t, store: store, conns: map[net.Conn]bool{}}
	switch network {
	case "unix":
		if where == "" {
			where = filepath.Join(shortTempDir(t), "s")
		}
		ln, err = net.Listen("unix", where)
		s.target = "UNIX:" + where
	case "tcp":
		if where == "" {
			where = "127.0.0.1:0"
		}
		ln, err = net.Listen("tcp4", where)
		if err == nil {
			s.target = "IP:" + ln.Addr().String()
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
	t.Cleanup(s.stop)
	return s
}

// where returns what startFake needs to listen at the same place again.
func (s *fakeServer) where() string {
	if a, ok := s.ln.Addr().(*net.UnixAddr); ok {
		return a.Name
	}
	return s.ln.Addr().String()
}

func (s *fakeServer) setMode(m fakeMode) { s.mode.Store(int32(m)) }

func (s *fakeServer) acceptLoop() {
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
		s.accepts.Add(1)
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

// stop closes the listener and every connection and waits for the
// goroutines. Safe to call twice.
func (s *fakeServer) stop() {
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

func (s *fakeServer) serve(c net.Conn) {
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
	for {
		m, err := rd.ReadMessage()
		if err != nil {
			clean = err == io.EOF
			return
		}
		s.requests.Add(1)
		resp := proto.Message{Response: true, UID: m.UID, Op: m.Op}
		mode := fakeMode(s.mode.Load())
		switch mode {
		case modeSilent:
			continue
		case modeEmpty:
		case modeDisconn:
			resp.Payload = []byte{proto.ResultDisconnected}
		default:
			p, ok := s.handle(m)
			if !ok {
				return
			}
			resp.Payload = p
		}
		switch mode {
		case modeWrongUID:
			resp.UID++
		case modeWrongOp:
			resp.Op = (resp.Op + 1) % 4
		}
		out, err = proto.AppendMessage(out[:0], &resp)
		if err != nil {
			s.t.Errorf("fake server: %v", err)
			return
		}
		if mode == modeBadLevel {
			out[1] = 0x10
		}
		if mode == modeExtra {
			out = append(out, out...)
		}
		if _, err := c.Write(out); err != nil {
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
func (s *fakeServer) handle(m *proto.Message) ([]byte, bool) {
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.real != nil {
		if m.Op == proto.OpAdd {
			if req, _, ok := proto.ParseAddRequest(m.Payload); ok {
				s.lastTimeout.Store(req.TimeoutMS)
			}
		}
		return server.Handle(st.real, time.Now(), m, nil)
	}
	switch m.Op {
	case proto.OpAdd:
		req, code, ok := proto.ParseAddRequest(m.Payload)
		if !ok {
			return nil, false
		}
		s.lastTimeout.Store(req.TimeoutMS)
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
