// SPDX-License-Identifier: Apache-2.0

package sessiond

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcache-go/distcache/goimpl/store"
)

// IDPrefix is the first byte of the cache id of every sessiond entry; the
// 32-byte key field follows it (see the package documentation).
const IDPrefix byte = 's'

// IDSize is the length of a sessiond entry's cache id.
const IDSize = 1 + KeySize

// Options configure a Server. The zero value is ready to use.
type Options struct {
	// Timeout bounds the store calls for one datagram (0 = the store's
	// own bounds only). A store that misses it answers as unavailable:
	// a GET is then not found, a NEW not stored.
	Timeout time.Duration
}

// Stats counts what a Server has seen since it was created.
type Stats struct {
	New, Get, Remove uint64 // well-formed requests, by type
	Hits, Misses     uint64 // GET outcomes
	Replaced         uint64 // NEWs for a key already stored (the new value wins)
	NotStored        uint64 // NEWs the cache refused
	Short            uint64 // datagrams under 36 bytes
	BadVersion       uint64 // version byte not 1
	BadType          uint64 // type not 0, 1 or 2
	Oversize         uint64 // datagrams over 548 bytes
	NoValue          uint64 // NEW without a value
	SendErrors       uint64 // GET replies the kernel refused
}

// Malformed is the number of datagrams dropped as malformed.
func (s Stats) Malformed() uint64 {
	return s.Short + s.BadVersion + s.BadType + s.Oversize + s.NoValue
}

// Server answers sessiond datagrams from a store.
type Server struct {
	store   store.Store
	timeout time.Duration

	mu     sync.Mutex
	conn   *net.UDPConn
	closed bool

	nNew, nGet, nRemove, hits, misses, replaced, notStored atomic.Uint64
	short, badVersion, badType, oversize, noValue, sendErr atomic.Uint64
}

// New returns a Server keeping its entries in st.
func New(st store.Store, opts Options) *Server {
	return &Server{store: st, timeout: opts.Timeout}
}

// Serve reads datagrams from conn and answers them until conn is closed or
// Close is called, then returns nil. Other read errors are returned. Serve
// answers each datagram inline, from buffers allocated once.
func (s *Server) Serve(conn *net.UDPConn) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.conn = conn
	s.mu.Unlock()

	// One byte more than the largest valid datagram, so a longer one is seen
	// as too long rather than silently truncated to a valid length.
	in := make([]byte, MaxDatagram+1)
	out := make([]byte, MaxDatagram)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(in)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if r := s.Handle(in[:n], out); r > 0 {
			s.reply(conn, out[:r], from)
		}
	}
}

func (s *Server) reply(conn *net.UDPConn, b []byte, to netip.AddrPort) {
	if _, err := conn.WriteToUDPAddrPort(b, to); err != nil {
		s.sendErr.Add(1)
	}
}

// Close stops Serve by closing its connection.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn != nil {
		return s.conn.Close()
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	return Stats{
		New: s.nNew.Load(), Get: s.nGet.Load(), Remove: s.nRemove.Load(),
		Hits: s.hits.Load(), Misses: s.misses.Load(),
		Replaced: s.replaced.Load(), NotStored: s.notStored.Load(),
		Short: s.short.Load(), BadVersion: s.badVersion.Load(), BadType: s.badType.Load(),
		Oversize: s.oversize.Load(), NoValue: s.noValue.Load(), SendErrors: s.sendErr.Load(),
	}
}

// Handle processes one datagram and writes the reply, if there is one, to
// out, returning its length (0: no reply). out needs a capacity of
// MaxDatagram bytes (with less, nothing is handled and 0 is returned).
// Handle is what Serve calls for each datagram; it is exported for servers
// that read datagrams themselves.
func (s *Server) Handle(b, out []byte) int {
	if cap(out) < MaxDatagram {
		return 0
	}
	p, err := Parse(b)
	if err != nil {
		s.countMalformed(err)
		return 0
	}
	// The cache id is built in the reply buffer, where a GET reply needs
	// the key anyway: out[3] (the timeout's low byte) holds the prefix
	// until the reply is finished, so nothing is allocated per datagram.
	out = out[:MaxDatagram]
	copy(out[4:HeaderSize], p.Key[:])
	out[3] = IDPrefix
	id := out[3:HeaderSize]
	ctx := context.Background()
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	switch p.Type {
	case TypeNew:
		s.nNew.Add(1)
		// At most 65535 s, well under the stores' 7-day limit.
		ttl := time.Duration(p.Timeout) * time.Second
		err := s.store.Add(ctx, id, p.Value, ttl)
		if errors.Is(err, store.ErrDuplicate) {
			// A store keeps the first data for an id; stunnel's latest
			// session for a key replaces the earlier one.
			if s.store.Remove(ctx, id) == nil {
				s.replaced.Add(1)
			}
			err = s.store.Add(ctx, id, p.Value, ttl)
		}
		if err != nil {
			s.notStored.Add(1)
		}
		return 0
	case TypeRemove:
		s.nRemove.Add(1)
		s.store.Remove(ctx, id)
		return 0
	}
	// TypeGet. The value is appended in place after the header; one
	// longer than MaxValue would not fit there.
	s.nGet.Add(1)
	v, err := s.store.Get(ctx, id, out[HeaderSize:HeaderSize])
	out[0], out[2], out[3] = Version, 0, 0
	if err != nil || len(v) == 0 || len(v) > MaxValue {
		// Not stored, or longer than stunnel's receive buffer, which would
		// truncate it (only a non-stunnel client can store such a value).
		s.misses.Add(1)
		out[1] = TypeNotFound
		return HeaderSize
	}
	s.hits.Add(1)
	out[1] = TypeFound
	return HeaderSize + len(v)
}

func (s *Server) countMalformed(err error) {
	switch err {
	case ErrShort:
		s.short.Add(1)
	case ErrVersion:
		s.badVersion.Add(1)
	case ErrType:
		s.badType.Add(1)
	case ErrOversize:
		s.oversize.Add(1)
	case ErrNoValue:
		s.noValue.Add(1)
	}
}
