package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tool"
	"github.com/distcache-go/distcache/goimpl/sessiond"

	"github.com/distcache-go/distcache/goimpl/proto"
	cache "github.com/distcache-go/distcache/goimpl/server"
)

// backend is the session cache and the request handler of goimpl/server,
// plus the -minlifetime rule.
type backend struct {
	cache *cache.ShardedCache
	// shortLifetime replaces ADD timeouts under one second (0 = off).
	shortLifetime uint32
}

func newBackend(cfg *config) *backend {
	return &backend{
		cache: cache.NewCache(cache.Config{
			MaxSessions: int(cfg.sessions),
			MaxBytes:    cfg.maxBytes,
		}),
		shortLifetime: uint32(cfg.minLifetime * 1000),
	}
}

// handle appends the response payload for one request to out; ok is false
// when the connection must be closed without an answer. An ADD whose
// timeout is under 1000 ms is taken as "lifetime not given" (httpd 2.4
// sends only the millisecond remainder of its lifetime) and stored for
// -minlifetime seconds instead.
func (b *backend) handle(now time.Time, m *proto.Message, out []byte) ([]byte, bool) {
	if m.Op == proto.OpAdd && b.shortLifetime > 0 && len(m.Payload) >= 8 &&
		binary.BigEndian.Uint32(m.Payload) < 1000 {
		binary.BigEndian.PutUint32(m.Payload, b.shortLifetime)
	}
	return cache.Handle(b.cache, now, m, out)
}

func (b *backend) items(now time.Time) int { return b.cache.NumItems(now) }

func (b *backend) hitsMisses() (uint64, uint64) {
	st := b.cache.Stats()
	return st.Hits, st.Misses
}

// startSessiond serves stunnel's sessiond protocol (UDP) from the same
// cache. The socket is created before daemonising; a daemon child inherits
// it as descriptor 1 after the listener. It returns a stop function and,
// when the parent is about to detach, the socket's descriptor to hand over.
func startSessiond(cfg *config, be *backend) (stop func(), f *os.File, err error) {
	if cfg.sessiond == "" {
		return nil, nil, nil
	}
	var conn *net.UDPConn
	if tool.IsDaemonChild() {
		pc, err := net.FilePacketConn(tool.Inherited(1))
		if err != nil {
			return nil, nil, err
		}
		uc, ok := pc.(*net.UDPConn)
		if !ok {
			return nil, nil, errors.New("inherited descriptor is not a UDP socket")
		}
		conn = uc
	} else {
		a, err := tool.ParseAddr(cfg.sessiond)
		if err != nil {
			return nil, nil, err
		}
		network := map[string]string{"tcp4": "udp4", "tcp6": "udp6"}[a.Network]
		if network == "" {
			return nil, nil, errors.New("sessiond needs an IP:host:port (or IPv6:) address")
		}
		ua, err := net.ResolveUDPAddr(network, a.Address)
		if err != nil {
			return nil, nil, err
		}
		if conn, err = net.ListenUDP(network, ua); err != nil {
			return nil, nil, err
		}
		if cfg.daemon.Detach {
			if f, err = conn.File(); err != nil {
				return nil, nil, err
			}
		}
	}
	s := sessiond.New(be.cache, sessiond.Options{})
	go func() {
		if err := s.Serve(conn); err != nil {
			fmt.Fprintf(os.Stderr, "Error, sessiond on '%s' stopped: %v\n", cfg.sessiond, err)
		}
	}()
	return func() { s.Close() }, f, nil
}
