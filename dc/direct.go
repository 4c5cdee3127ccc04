package dc

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcache-go/distcache/goimpl/client"
	gonal "github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/plug"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// ctxImpl is what the DC_CTX exports drive: *client.Ctx, or *directCtx.
type ctxImpl interface {
	AddSession(id, data []byte, timeoutMS uint64) bool
	RemoveSession(id []byte) bool
	GetSession(id, dst []byte) (int, bool)
	RegetSession(id, dst []byte) (int, bool)
	HasSession(id []byte) int
	Close()
}

// directCtx is DC_CTX done the way the original library did it, on the
// calling thread: a nal connection, a DC_PLUG and a selector per exchange,
// waiting in ppoll(2) inside NAL_SELECTOR_select. goimpl/client's Ctx has the
// same semantics over Go's net package, but every blocking read there parks
// the goroutine and the runtime's poller must wake the C caller's locked
// thread, which cost 3–5 × the raw socket round trip in capi-bench; this path
// stays within a few microseconds of it. Semantics follow client.Ctx (which
// documents the EDGES fixes): thread-safe, pooled persistent connections,
// bounded waits, reget of the last successful GET, lifetimes under 1000 ms
// replaced by the default lifetime (httpd 2.4 passes only the remainder).
// DISTCACHE_CTX=client selects client.Ctx instead.
type directCtx struct {
	addr    *gonal.Address
	flags   uint32
	connTO  time.Duration
	ioTO    time.Duration
	defLife time.Duration
	uid     atomic.Uint32

	mu    sync.Mutex
	idle  []*exch // persistent: live connections
	spare []*exch // flags 0: closed connections kept for reuse (no allocation per operation)

	regetMu   sync.Mutex
	regetSet  bool
	regetID   []byte
	regetData []byte
}

const maxIdle = 16

// exch is one connection with its plug and selector.
type exch struct {
	sel *gonal.Selector
	p   *plug.Plug
	bad bool // stream judged corrupt: never reuse
}

func envMS(name string, unit time.Duration, def time.Duration) time.Duration {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return time.Duration(v) * unit
	}
	return def
}

// Every open directCtx, so that a fork can list their pooled descriptors.
var (
	ctxsMu sync.Mutex
	ctxs   = map[*directCtx]struct{}{}
)

// pooledFDs returns the descriptors of every persistent connection sitting in
// a pool. A forked child closes its copies at once (its own engine makes its
// own connections), so a parent's connection is not held open by children.
func pooledFDs() []int {
	ctxsMu.Lock()
	defer ctxsMu.Unlock()
	var fds []int
	for d := range ctxs {
		d.mu.Lock()
		for _, e := range d.idle {
			if st := e.p.Conn().Export(); st.Live && st.FD >= 0 {
				fds = append(fds, st.FD)
			}
		}
		d.mu.Unlock()
	}
	return fds
}

func newCtx(target string, flags uint32) ctxImpl {
	if os.Getenv("DISTCACHE_CTX") == "client" {
		c, err := client.New(target, flags, nil)
		if err != nil {
			return nil
		}
		return c
	}
	if _, err := gonal.ParseTarget(context.Background(), target); err != nil {
		return nil
	}
	a := gonal.NewAddress()
	if !a.Create(target, 4096) || !a.CanConnect() {
		return nil
	}
	d := &directCtx{addr: a, flags: flags,
		connTO:  envMS(client.EnvConnectTimeout, time.Millisecond, client.DefaultConnectTimeout),
		ioTO:    envMS(client.EnvIOTimeout, time.Millisecond, client.DefaultIOTimeout),
		defLife: envMS(client.EnvDefaultLifetime, time.Second, client.DefaultDefaultLifetime)}
	ctxsMu.Lock()
	ctxs[d] = struct{}{}
	ctxsMu.Unlock()
	return d
}

func (d *directCtx) persistent() bool { return d.flags&client.FlagPersistent != 0 }

func (d *directCtx) dial() *exch {
	c := gonal.NewConnection()
	if !c.Create(d.addr) {
		c.Free()
		return nil
	}
	sel := gonal.NewSelectorFdPoll()
	p := plug.New(c, plug.FlagToServer)
	if p == nil || !p.ToSelect(sel) {
		c.Free()
		sel.Free()
		return nil
	}
	return &exch{sel: sel, p: p}
}

func (e *exch) close() {
	e.p.Free()
	e.sel.Free()
}

func (d *directCtx) get() *exch {
	d.mu.Lock()
	if d.persistent() {
		if n := len(d.idle); n > 0 {
			e := d.idle[n-1]
			d.idle = d.idle[:n-1]
			d.mu.Unlock()
			return e
		}
	} else if n := len(d.spare); n > 0 {
		e := d.spare[n-1]
		d.spare = d.spare[:n-1]
		d.mu.Unlock()
		// the same connection object, plug and selector, connected anew
		if e.p.Conn().Create(d.addr) && e.p.ToSelect(e.sel) {
			return e
		}
		e.close()
		return nil
	}
	d.mu.Unlock()
	return d.dial()
}

func (d *directCtx) put(e *exch, ok bool) {
	if ok && !e.bad {
		if !d.persistent() {
			e.p.Conn().Reset() // closes the descriptor, unbinds, keeps the buffers
		}
		d.mu.Lock()
		if d.persistent() && len(d.idle) < maxIdle {
			d.idle = append(d.idle, e)
			e = nil
		} else if !d.persistent() && len(d.spare) < maxIdle {
			d.spare = append(d.spare, e)
			e = nil
		}
		d.mu.Unlock()
	}
	if e != nil {
		e.close()
	}
}

// dropIdle closes pooled connections after a network failure (they lead to
// the same, probably restarted, server).
func (d *directCtx) dropIdle() {
	d.mu.Lock()
	idle := d.idle
	d.idle = nil
	d.mu.Unlock()
	for _, e := range idle {
		e.close()
	}
}

// once sends the request on e and waits for the response. dead reports a
// connection failure (worth one retry); a timeout or a rejected response is
// not.
func (d *directCtx) once(e *exch, uid uint32, cmd int, payload []byte) (resp []byte, ok, dead bool) {
	if !e.p.Write(false, uid, cmd, payload) || !e.p.Commit() {
		return nil, false, true
	}
	deadline := time.Now().Add(d.connTO + d.ioTO)
	for {
		rest := time.Until(deadline)
		if rest <= 0 {
			return nil, false, false
		}
		n, err := e.sel.Select(uint64(rest/time.Microsecond)+1, true)
		if n < 0 && err == nil {
			return nil, false, true
		}
		if n <= 0 {
			continue // timeout slice or EINTR: the deadline decides
		}
		if !e.p.IO() {
			return nil, false, true
		}
		if ruid, rcmd, data, got := e.p.Read(false); got {
			if ruid != uid || rcmd != cmd || len(data) == 0 || len(data) > maxLen {
				return nil, false, false
			}
			resp = append([]byte(nil), data...)
			e.bad = !e.p.Consume()
			return resp, true, false
		}
	}
}

func (d *directCtx) transact(cmd int, payload []byte) ([]byte, bool) {
	uid := d.uid.Add(1)
	for try := 0; try < 2; try++ {
		e := d.get()
		if e == nil {
			d.dropIdle()
			return nil, false
		}
		resp, ok, dead := d.once(e, uid, cmd, payload)
		d.put(e, ok)
		if ok {
			return resp, true
		}
		if d.persistent() {
			d.dropIdle()
		}
		if !dead || !d.persistent() || d.flags&client.FlagRetry == 0 {
			return nil, false
		}
	}
	return nil, false
}

func (d *directCtx) clearReget() {
	d.regetMu.Lock()
	d.regetSet = false
	d.regetMu.Unlock()
}

func (d *directCtx) AddSession(id, data []byte, timeoutMS uint64) bool {
	d.clearReget()
	if len(id) < 1 || len(data) < 1 || proto.AddRequestSize(len(id), len(data)) > proto.MaxPayload {
		return false
	}
	if timeoutMS < 1000 {
		timeoutMS = uint64(d.defLife / time.Millisecond)
	}
	resp, ok := d.transact(plug.CmdAdd, proto.AppendAddRequest(nil, uint32(timeoutMS), id, data))
	return ok && len(resp) == 1 && resp[0] == proto.ResultOK
}

func (d *directCtx) RemoveSession(id []byte) bool {
	d.clearReget()
	resp, ok := d.transact(plug.CmdRemove, id)
	return ok && len(resp) == 1 && resp[0] == proto.ResultOK
}

func (d *directCtx) HasSession(id []byte) int {
	d.clearReget()
	resp, ok := d.transact(plug.CmdHave, id)
	switch {
	case !ok:
		return -1
	case len(resp) != 1:
		return 0
	case resp[0] == proto.ResultOK:
		return 1
	case resp[0] == proto.ResultNotOK:
		return 0
	}
	return -1
}

func (d *directCtx) GetSession(id, dst []byte) (int, bool) {
	resp, ok := d.transact(plug.CmdGet, id)
	if !ok || len(resp) < 5 {
		d.clearReget()
		return 0, false
	}
	copy(dst, resp)
	d.regetMu.Lock()
	d.regetSet = len(id) <= 64
	d.regetID = append(d.regetID[:0], id...)
	d.regetData = resp
	d.regetMu.Unlock()
	return len(resp), true
}

func (d *directCtx) RegetSession(id, dst []byte) (int, bool) {
	d.regetMu.Lock()
	defer d.regetMu.Unlock()
	if !d.regetSet || !bytes.Equal(id, d.regetID) {
		return 0, false
	}
	copy(dst, d.regetData)
	return len(d.regetData), true
}

func (d *directCtx) Close() {
	ctxsMu.Lock()
	delete(ctxs, d)
	ctxsMu.Unlock()
	d.mu.Lock()
	idle := append(d.idle, d.spare...)
	d.idle, d.spare = nil, nil
	d.mu.Unlock()
	for _, e := range idle {
		e.close()
	}
	d.addr.Free()
}
