// SPDX-License-Identifier: Apache-2.0

package server

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/plug"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// serveUnix runs a dc_server-style loop (accept, ClientsIO) on a unix
// socket with dc_server's 4096-byte connection buffers, in one goroutine
// that owns the Server. stop ends it once every client has gone (or a
// deadline passes); it returns the operation count and whether all
// clients were deleted.
func serveUnix(t *testing.T) (addr *nal.Address, stop func() (uint64, bool)) {
	t.Helper()
	SetDefaultCache()
	srv := New(1000)
	addr = nal.NewAddress()
	l, sel := nal.NewListener(), nal.NewSelector()
	if srv == nil || !addr.Create("UNIX:"+filepath.Join(t.TempDir(), "s"), 4096) ||
		!l.Create(addr) || !l.AddToSelector(sel) {
		t.Fatal("server setup")
	}
	quit := make(chan struct{})
	type result struct {
		ops   uint64
		empty bool
	}
	done := make(chan result)
	go func() {
		defer func() { srv.Free(); l.Free(); sel.Free() }()
		var deadline time.Time
		for {
			select {
			case <-quit:
				quit = nil
				deadline = time.Now().Add(10 * time.Second)
			default:
			}
			if quit == nil && (srv.ClientsEmpty() || time.Now().After(deadline)) {
				done <- result{srv.NumOperations(), srv.ClientsEmpty()}
				return
			}
			sel.Select(20000, true)
			if c := nal.NewConnection(); c.Accept(l) {
				c.AddToSelector(sel)
				srv.NewClient(c, ClientFlagInServer)
			} else {
				c.Free()
			}
			srv.ClientsIO(time.Now())
		}
	}()
	return addr, func() (uint64, bool) {
		close(quit)
		r := <-done
		return r.ops, r.empty
	}
}

// peer is a plug-level client on its own selector.
type peer struct {
	sel *nal.Selector
	p   *plug.Plug
}

func dial(addr *nal.Address) (*peer, error) {
	c, sel := nal.NewConnection(), nal.NewSelector()
	if !c.Create(addr) || !c.AddToSelector(sel) {
		return nil, fmt.Errorf("connect")
	}
	return &peer{sel, plug.New(c, plug.FlagToServer)}, nil
}

func (p *peer) close() { p.p.Free(); p.sel.Free() }

// pipeline writes several requests into the send buffer at once.
func (p *peer) pipeline(msgs ...*proto.Message) error {
	var raw []byte
	for _, m := range msgs {
		raw, _ = proto.AppendMessage(raw, m)
	}
	if int(p.p.Conn().Send().Write(raw)) != len(raw) {
		return fmt.Errorf("requests do not fit")
	}
	return nil
}

func (p *peer) recv() (uint32, []byte, error) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if uid, _, data, ok := p.p.Read(false); ok {
			out := append([]byte(nil), data...)
			p.p.Consume()
			return uid, out, nil
		}
		p.sel.Select(100000, true)
		if !p.p.IO() {
			return 0, nil, fmt.Errorf("connection closed")
		}
	}
	return 0, nil, fmt.Errorf("no response")
}

// Several clients on a unix socket, each pipelining GETs of a 20000-byte
// session behind one another: with 4096-byte buffers every response is
// still being written when the next request is read, which made the
// original drop the connection (E-5). All answers arrive, in order; the
// operation count covers exactly the answered requests (E-17); closed
// clients are deleted.
func TestServerUnixPipelinedClients(t *testing.T) {
	addr, stop := serveUnix(t)
	const clients, gets = 4, 3
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := pipelinedClient(addr, i, gets); err != nil {
				t.Errorf("client %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	ops, empty := stop()
	if want := uint64(clients * (gets + 3)); ops != want {
		t.Errorf("%d operations, want %d", ops, want)
	}
	if !empty {
		t.Error("closed clients were not deleted")
	}
}

func pipelinedClient(addr *nal.Address, i, gets int) error {
	p, err := dial(addr)
	if err != nil {
		return err
	}
	defer p.close()
	id := []byte(fmt.Sprintf("client-%d", i))
	data := bytes.Repeat([]byte{byte('a' + i)}, 20000)
	// The ADD (20016 bytes) is larger than the send buffer: the plug
	// feeds it in as room appears.
	if !p.p.Write(false, 1, plug.CmdAdd, proto.AppendAddRequest(nil, 60000, id, data)) || !p.p.Commit() {
		return fmt.Errorf("add not queued")
	}
	if _, res, err := p.recv(); err != nil || !bytes.Equal(res, []byte{0}) {
		return fmt.Errorf("add: %x %v", res, err)
	}
	var reqs []*proto.Message
	for k := 0; k < gets; k++ {
		reqs = append(reqs, &proto.Message{UID: uint32(10 + k), Op: proto.OpGet, Payload: id})
	}
	reqs = append(reqs,
		&proto.Message{UID: 20, Op: proto.OpRemove, Payload: id},
		&proto.Message{UID: 21, Op: proto.OpHave, Payload: id})
	if err := p.pipeline(reqs...); err != nil {
		return err
	}
	for k := 0; k < gets; k++ {
		uid, res, err := p.recv()
		if err != nil || uid != uint32(10+k) || !bytes.Equal(res, data) {
			return fmt.Errorf("get %d: uid %d, %d bytes, %v", k, uid, len(res), err)
		}
	}
	for _, want := range []struct {
		uid uint32
		res byte
	}{{20, 0}, {21, 1}} {
		if uid, res, err := p.recv(); err != nil || uid != want.uid || !bytes.Equal(res, []byte{want.res}) {
			return fmt.Errorf("uid %d: %d %x %v", want.uid, uid, res, err)
		}
	}
	return nil
}
