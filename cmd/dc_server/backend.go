package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tool"
	"github.com/distcache-go/distcache/goimpl/sessiond"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// backend is the session cache and the protocol handler over it, with the
// -minlifetime rule.
type backend struct {
	cache   *cache.Cache
	handler store.Handler
}

func newBackend(cfg *config) *backend {
	c := cache.New(cache.Config{
		MaxSessions: int(cfg.sessions),
		MaxBytes:    cfg.maxBytes,
	})
	return &backend{
		cache:   c,
		handler: store.Handler{Store: c.Store(), MinLifetime: time.Duration(cfg.minLifetime) * time.Second,
			// The in-memory cache takes atomically (doc/EXTENSIONS.md).
			Features: func() uint32 { return proto.FeatureTake }},
	}
}

// handle appends the response payload for one request to out; an error
// means the connection must be closed without an answer.
func (b *backend) handle(m *proto.Message, out []byte) ([]byte, error) {
	return b.handler.Handle(context.Background(), m, out)
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
	s := sessiond.New(be.cache.Store(), sessiond.Options{})
	go func() {
		if err := s.Serve(conn); err != nil {
			fmt.Fprintf(os.Stderr, "Error, sessiond on '%s' stopped: %v\n", cfg.sessiond, err)
		}
	}()
	return func() { s.Close() }, f, nil
}
