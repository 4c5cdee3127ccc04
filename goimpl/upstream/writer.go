// SPDX-License-Identifier: Apache-2.0

package upstream

import (
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/rawio"
)

// writer coalesces the requests of one connection. A caller that finds it
// idle writes its request at once; requests queued by other callers while
// that write is under way go out together in the next one. Pipelined
// requests so share one write: one system call, and on TLS one record
// (one seal, one header, one MAC) instead of one per request. No request
// waits for a timer or for a request that is not yet queued.
type writer struct {
	l   *link
	nc  net.Conn
	io  *rawio.Conn // writes nc
	gen uint64
	wdl time.Time // the write deadline set on nc (busy held)

	mu       sync.Mutex
	buf      []byte    // queued, not yet written
	spare    []byte    // the last written buffer, reused
	deadline time.Time // the latest write deadline of the queued requests
	busy     bool      // someone is writing
	failed   bool      // a write failed: the connection is being dropped
	batched  bool      // flush is due at the end of a loop's round (Call.Batch)
	flushFn  func()    // flush, made once
}

// maxRounds bounds how many writes a caller makes for others before it
// hands the rest to a goroutine of its own and goes back to its request.
const maxRounds = 8

// maxKeep is the largest buffer kept for reuse between writes.
const maxKeep = 256 << 10

// send queues m and writes what is queued when no one else is writing;
// others says other requests are in flight on the connection. With
// nowait the caller (an event loop) does not wait for room: what the
// socket does not take at once is written by a goroutine. With batch
// (the loop's Call.Batch) the write waits for the end of the loop's
// round, where flush makes one write of the requests the round started.
// It fails the connection (and returns false) when m cannot be encoded or
// the write fails; the requests in flight then fail with it.
func (w *writer) send(m *proto.Message, deadline time.Time, others, nowait bool, batch func(func())) bool {
	w.mu.Lock()
	if w.failed {
		w.mu.Unlock()
		return false // fail has run or is running: the request fails with it
	}
	var err error
	w.buf, err = proto.AppendMessage(w.buf, m) // leaves buf alone on error
	if err != nil {
		w.mu.Unlock()
		w.l.fail(w.gen, err, false)
		return false
	}
	w.deadline = later(w.deadline, deadline)
	if w.busy {
		w.mu.Unlock()
		return true
	}
	if batch != nil {
		due := !w.batched
		w.batched = true
		if w.flushFn == nil {
			w.flushFn = w.flush
		}
		f := w.flushFn
		w.mu.Unlock()
		if due {
			batch(f)
		}
		return true
	}
	w.busy = true
	if others {
		// Other requests are in flight, so others are likely to come:
		// let the goroutines that are ready run first, and those with a
		// request to send queue it here meanwhile, to go out with ours.
		// (Alone, the yield would only wake another thread for nothing.)
		w.mu.Unlock()
		runtime.Gosched()
		w.mu.Lock()
	}
	return w.drain(maxRounds, nowait)
}

// flush writes, at the end of a loop's round, what the requests it
// started queued (send with batch), unless someone is writing already
// (who writes them too) or the connection has failed (they fail with it).
// The first request of a round so waits only for the rest of the round,
// and the others go in its write: with four clients of dc_client on one
// CPU, 1.5 writes to the server per request instead of 2.
func (w *writer) flush() {
	w.mu.Lock()
	w.batched = false
	if w.busy || w.failed {
		w.mu.Unlock()
		return
	}
	w.busy = true
	w.drain(maxRounds, true)
}

// drain writes until nothing is queued, at most rounds times; then, when
// more is queued, a goroutine takes over. Called with mu held and busy
// set; returns with mu released.
func (w *writer) drain(rounds int, nowait bool) bool {
	for ; len(w.buf) > 0; rounds-- {
		if rounds == 0 {
			w.mu.Unlock()
			go func() {
				w.mu.Lock()
				w.drain(-1, false)
			}()
			return true
		}
		buf, dl := w.buf, w.deadline
		w.buf, w.spare, w.deadline = w.spare[:0], nil, time.Time{}
		w.mu.Unlock()
		// Every write gets at least the time dl gives it, at most twice
		// that: the deadline is moved only when it is sooner than dl (to
		// twice as far), or more than twice as far, since a timer update
		// per write costs more than the write.
		if now := time.Now(); dl.IsZero() != w.wdl.IsZero() || !dl.IsZero() && (w.wdl.Before(dl) || w.wdl.After(now.Add(2*dl.Sub(now)))) {
			w.wdl = time.Time{}
			if !dl.IsZero() {
				w.wdl = now.Add(2 * dl.Sub(now))
			}
			w.nc.SetWriteDeadline(w.wdl)
		}
		var err error
		if nowait {
			var n int
			if n, err = w.io.TryWrite(buf); err == rawio.ErrWouldBlock {
				// The rest goes first, then what was queued meanwhile.
				w.mu.Lock()
				w.buf = append(append(w.spare[:0:0], buf[n:]...), w.buf...)
				w.deadline = later(w.deadline, dl)
				rounds = 1 // the next round hands over to a goroutine
				continue
			}
		} else {
			_, err = w.io.Write(buf)
		}
		w.mu.Lock()
		if cap(buf) <= maxKeep {
			w.spare = buf[:0]
		}
		if err != nil {
			w.failed, w.busy = true, false
			w.buf = w.buf[:0]
			w.mu.Unlock()
			w.l.fail(w.gen, err, false)
			return false
		}
	}
	w.busy = false
	w.mu.Unlock()
	return true
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
