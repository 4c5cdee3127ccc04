// SPDX-License-Identifier: Apache-2.0

package server

import (
	"sync"
	"time"

	"github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/plug"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// DC_CLIENT flags.
const (
	ClientFlagNoFreeConn uint32 = 0x0001 // deleting the client leaves the connection alone
	ClientFlagInServer   uint32 = 0x0002 // ClientsIO drives and deletes the client
)

// CacheFactory builds the cache of a new Server (DC_CACHE_cb.cache_new).
// A cache that also has a Free method gets it called by Server.Free.
type CacheFactory func(maxSessions int) (Cache, error)

var (
	implMu sync.Mutex
	impl   CacheFactory
)

// SetCache selects the cache implementation used by later New calls
// (DC_SERVER_set_cache); a nil factory is refused.
func SetCache(f CacheFactory) bool {
	if f == nil {
		return false
	}
	implMu.Lock()
	impl = f
	implMu.Unlock()
	return true
}

// SetDefaultCache selects the built-in cache (DC_SERVER_set_default_cache).
func SetDefaultCache() bool {
	return SetCache(NewDefaultCache)
}

// Server is a DC_SERVER: a cache and the client connections it serves
// (DC_SERVER_new(3)). Like the original, a Server and its
// clients are used by one thread at a time.
type Server struct {
	cache   Cache
	clients []*Client
	ops     uint64
	freed   bool
	scratch []byte // GET responses are built here: one per server, not per client (E-13)
	cs      cacheStore
}

// Client is a DC_CLIENT: one connection served by a Server.
type Client struct {
	srv       *Server
	plug      *plug.Plug
	flags     uint32
	closing   bool   // input was corrupt: flush what is queued, then close
	onRelease func() // see OnRelease
}

// New creates a server with a cache from the implementation selected by
// SetCache or SetDefaultCache (DC_SERVER_new). It returns nil if none was
// selected or the cache cannot be built (the default refuses sizes outside
// 64..60000).
func New(maxSessions int) *Server {
	implMu.Lock()
	f := impl
	implMu.Unlock()
	return NewWith(maxSessions, f)
}

// NewWith is New with the cache implementation given instead of the
// process-wide one; nil if f is nil or fails.
func NewWith(maxSessions int, f CacheFactory) *Server {
	if f == nil {
		return nil
	}
	c, err := f(maxSessions)
	if err != nil || c == nil {
		return nil
	}
	return &Server{cache: c, cs: cacheStore{c: c}}
}

// Cache returns the server's cache.
func (s *Server) Cache() Cache {
	if s == nil {
		return nil
	}
	return s.cache
}

// Free releases the cache and deletes the IN_SERVER clients
// (DC_SERVER_free). Clients the caller drives stay usable on their own:
// their Delete still frees them (the original asserted instead).
func (s *Server) Free() {
	if s == nil || s.freed {
		return
	}
	if f, ok := s.cache.(interface{ Free() }); ok {
		f.Free()
	}
	for _, c := range s.clients {
		if c.flags&ClientFlagInServer != 0 {
			c.release()
		} else {
			c.srv = nil
		}
	}
	*s = Server{freed: true}
}

// ItemsStored is the number of live cache entries (DC_SERVER_items_stored).
func (s *Server) ItemsStored(now time.Time) int {
	if s == nil || s.freed {
		return 0
	}
	return s.cache.NumItems(now)
}

// ResetOperations zeroes the operation counter.
func (s *Server) ResetOperations() {
	if s != nil {
		s.ops = 0
	}
}

// NumOperations counts requests fully processed and answered, whatever
// their result byte (E-17).
func (s *Server) NumOperations() uint64 {
	if s == nil {
		return 0
	}
	return s.ops
}

// SetOperations sets the operation counter (a server rebuilt after fork
// carries its parent's count on).
func (s *Server) SetOperations(n uint64) {
	if s != nil {
		s.ops = n
	}
}

// NewClient wraps conn in a server-side plug (DC_SERVER_new_client). The
// caller binds conn to a selector.
func (s *Server) NewClient(conn *nal.Connection, flags uint32) *Client {
	if s == nil || s.freed || conn == nil {
		return nil
	}
	var pf uint32
	if flags&ClientFlagNoFreeConn != 0 {
		pf = plug.FlagNoFreeConn
	}
	return s.AdoptClient(plug.New(conn, pf), flags)
}

// AdoptClient makes a client of a server-side plug made by the caller (a
// plug rebuilt after fork, with its queued requests and answers).
func (s *Server) AdoptClient(p *plug.Plug, flags uint32) *Client {
	if s == nil || s.freed || p == nil {
		return nil
	}
	c := &Client{srv: s, plug: p, flags: flags}
	s.clients = append(s.clients, c)
	return c
}

// OnRelease registers f, called once when the client's plug is freed:
// by Delete, by ClientsIO dropping it, or by Server.Free (IN_SERVER
// clients). The C export layer uses it to release the client's handles.
func (c *Client) OnRelease(f func()) {
	if c != nil {
		c.onRelease = f
	}
}

// Plug returns the client's plug (nil once deleted).
func (c *Client) Plug() *plug.Plug {
	if c == nil {
		return nil
	}
	return c.plug
}

// Flags returns the DC_CLIENT flags the client was made with.
func (c *Client) Flags() uint32 {
	if c == nil {
		return 0
	}
	return c.flags
}

// Delete removes the client from its server and frees its plug, and its
// connection unless NOFREE_CONN (DC_SERVER_del_client). False if the client
// was already deleted.
func (c *Client) Delete() bool {
	if c == nil || c.plug == nil {
		return false
	}
	if s := c.srv; s != nil {
		for i, x := range s.clients {
			if x == c {
				s.clients = append(s.clients[:i], s.clients[i+1:]...)
				break
			}
		}
	}
	c.release()
	return true
}

func (c *Client) release() {
	c.plug.Free()
	c.plug, c.srv = nil, nil
	if f := c.onRelease; f != nil {
		c.onRelease = nil
		f()
	}
}

// Process answers the client's next complete request, if any
// (DC_SERVER_process_client). It decodes from and encodes into the
// connection's buffers itself, so a caller running the connection's IO can
// use it without IN_SERVER (E-34). A request waiting behind a response that
// is still being encoded stays queued until that response is out (E-5).
// It returns false when the client must be closed: a request the original
// drops (an ADD shorter than 8 bytes), or corrupt input — but only once the
// answers queued before the corrupt bytes have left the plug and the send
// buffer (E-38); until then it returns true so that the caller keeps
// running the connection's IO.
func (c *Client) Process(now time.Time) bool {
	if c == nil || c.plug == nil || c.srv == nil {
		return false
	}
	if !c.plug.Flush() || c.closing { // Flush pushes queued output even then
		c.closing = true
		return c.plug.WriteBusy() || c.plug.Conn().Send().NotEmpty()
	}
	if c.plug.WriteBusy() {
		return true
	}
	uid, cmd, payload, ok := c.plug.Read(false)
	if !ok {
		return true
	}
	op, _ := proto.OpFromCmd(cmd)
	s := c.srv
	s.cs.now = now
	resp, ok := s.cs.handle(&proto.Message{UID: uid, Op: op, Payload: payload}, s.scratch)
	if cap(resp) > cap(s.scratch) {
		s.scratch = resp[:0] // Write copies the payload: reusable at once
	}
	if !ok || !c.plug.Write(false, uid, cmd, resp) || !c.plug.Commit() {
		c.plug.Consume()
		c.plug.Rollback()
		return false
	}
	c.srv.ops++
	if !c.plug.Consume() {
		// What follows the request is corrupt: the answer is queued; send
		// it before closing (E-38).
		c.closing = true
	}
	c.plug.Flush() // the answer into the send buffer now, for the caller's IO
	return true
}

// ClientsIO runs network I/O and processes at most one request for every
// IN_SERVER client, deleting the clients whose connection died or whose
// input is corrupt (DC_SERVER_clients_io). A client with corrupt input is
// kept until the answers already queued for it are written.
func (s *Server) ClientsIO(now time.Time) bool {
	if s == nil || s.freed {
		return true
	}
	var dead []*Client
	for _, c := range s.clients {
		if c.flags&ClientFlagInServer == 0 {
			continue
		}
		if c.closing {
			if c.drained() {
				dead = append(dead, c)
			}
			continue
		}
		if !c.plug.IO() {
			if c.plug.Err() == nil || c.drained() {
				dead = append(dead, c)
			} else {
				c.closing = true
			}
			continue
		}
		if !c.Process(now) && !c.closing {
			dead = append(dead, c)
		}
	}
	for _, c := range dead {
		c.Delete()
	}
	return true
}

// drained pushes a closing client's queued output; true once nothing is
// left to send or the connection can take no more.
func (c *Client) drained() bool {
	c.plug.Flush()
	conn := c.plug.Conn()
	if conn.Send().Empty() && !c.plug.WriteBusy() {
		return true
	}
	return !conn.IO()
}

// ClientsEmpty reports whether the server has no clients at all.
func (s *Server) ClientsEmpty() bool {
	return s == nil || len(s.clients) == 0
}
