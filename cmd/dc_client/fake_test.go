// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// fakeServer stands in for dc_server upstream of dc_client so that tests
// can see the rewritten uids, hold answers back, and misbehave. Its
// answers are a fixed function of the request:
//
//	GET "big:<n>"   n bytes of pattern (multi-frame responses)
//	GET <id>        "ok:" + id
//	anything else   the single byte 0x00
//
// A request whose id starts with "hold" is not answered until release.
type fakeServer struct {
	t    testing.TB
	ln   net.Listener
	path string

	mu    sync.Mutex
	uids  []uint32
	conns []net.Conn
	held  []heldReq
	// wrongUID makes the next answer carry a uid that was never asked.
	wrongUID bool
}

type heldReq struct {
	c net.Conn
	m proto.Message
}

func newFakeServer(t testing.TB, path string) *fakeServer {
	f := &fakeServer{t: t, path: path}
	f.start()
	t.Cleanup(f.stop)
	return f
}

func (f *fakeServer) start() {
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	f.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			go f.serve(c)
		}
	}()
}

// stop closes the listener and every connection (the server "dies").
func (f *fakeServer) stop() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.held = nil
	f.mu.Unlock()
}

func fakeAnswer(m *proto.Message) []byte {
	if m.Op != proto.OpGet {
		return []byte{0}
	}
	if n, ok := strings.CutPrefix(string(m.Payload), "big:"); ok {
		k, _ := strconv.Atoi(n)
		return pattern(k)
	}
	return append([]byte("ok:"), m.Payload...)
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

func (f *fakeServer) serve(c net.Conn) {
	rd := proto.NewReader(c, proto.WantRequests)
	for {
		m, err := rd.ReadMessage()
		if err != nil {
			c.Close()
			return
		}
		f.mu.Lock()
		f.uids = append(f.uids, m.UID)
		if bytes.HasPrefix(m.Payload, []byte("hold")) {
			cp := *m
			cp.Payload = append([]byte(nil), m.Payload...)
			f.held = append(f.held, heldReq{c, cp})
			f.mu.Unlock()
			continue
		}
		uid := m.UID
		if f.wrongUID {
			f.wrongUID = false
			uid += 1000000
		}
		f.mu.Unlock()
		out, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: uid, Op: m.Op, Payload: fakeAnswer(m)})
		c.Write(out)
	}
}

// release answers every held request.
func (f *fakeServer) release() {
	f.mu.Lock()
	held := f.held
	f.held = nil
	f.mu.Unlock()
	for _, h := range held {
		out, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: h.m.UID, Op: h.m.Op, Payload: []byte{0}})
		h.c.Write(out)
	}
}

func (f *fakeServer) heldCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.held)
}

func (f *fakeServer) seenUIDs() []uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint32(nil), f.uids...)
}
