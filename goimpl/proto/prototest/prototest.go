// SPDX-License-Identifier: Apache-2.0

// Package prototest is a fake distcache server for the tests of clients:
// it serves the protocol on a unix socket from a function of each request,
// so a test states only how its server answers (or misbehaves).
package prototest

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// Answer returns the payload of the response to m, or ok false to close
// the connection without answering. It runs on the connection's
// goroutine, one request at a time, so answers leave in order.
type Answer func(m *proto.Message) (payload []byte, ok bool)

// Miss answers every request with 0x01 (not found, not stored).
func Miss(*proto.Message) ([]byte, bool) { return []byte{proto.ResultNotOK}, true }

// Server is a running fake server; it stops when the test ends.
type Server struct {
	Path  string       // the socket's path
	Conns atomic.Int64 // connections accepted so far
}

// Addr is the server's address in the libnal grammar.
func (s *Server) Addr() string { return "UNIX:" + s.Path }

// Serve listens on path and answers every request with answer.
func Serve(t testing.TB, path string, answer Answer) *Server {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &Server{Path: path}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.Conns.Add(1)
			go serve(c, answer)
		}
	}()
	return s
}

func serve(c net.Conn, answer Answer) {
	defer c.Close()
	rd := proto.NewReader(c, proto.WantRequests)
	var out []byte
	for {
		m, err := rd.ReadMessage()
		if err != nil {
			return
		}
		p, ok := answer(m)
		if !ok {
			return
		}
		out, err = proto.AppendMessage(out[:0], &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: p})
		if err != nil {
			return
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}
