// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"math/rand"
	"testing"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/internal/cpumeter"
)

// loopReader replays one byte stream forever, in reads of at most chunk
// bytes (what a socket hands a server reading into a large buffer).
type loopReader struct {
	b     []byte
	off   int
	chunk int
}

func (r *loopReader) Read(p []byte) (int, error) {
	if r.off == len(r.b) {
		r.off = 0
	}
	n := copy(p[:min(len(p), r.chunk)], r.b[r.off:])
	r.off += n
	return n, nil
}

// BenchmarkServeMix is dc_server's per-request work without its sockets:
// reading a request, answering it from the session cache and encoding the
// answer, for the original dc_test's load (a random ADD, REMOVE, GET or
// HAVE of one of 64 sessions with ids of 10..63 bytes). One op is one
// request; it should allocate nothing but the entries ADD stores.
func BenchmarkServeMix(b *testing.B) {
	for _, sz := range []struct {
		name     string
		min, max int
	}{{"200-400B", 200, 400}, {"3000-4096B", 3000, 4096}} {
		b.Run(sz.name, func(b *testing.B) { benchServeMix(b, sz.min, sz.max) })
	}
}

func benchServeMix(b *testing.B, dmin, dmax int) {
	rng := rand.New(rand.NewSource(1))
	const nsess = 64
	ids := make([][]byte, nsess)
	datas := make([][]byte, nsess)
	for i := range ids {
		ids[i] = make([]byte, 10+rng.Intn(54))
		rng.Read(ids[i])
		datas[i] = make([]byte, dmin+rng.Intn(dmax-dmin))
		rng.Read(datas[i])
	}
	// A cycle of requests, long enough that the mix is the random one.
	var stream, payload []byte
	const nreq = 4096
	for i := 0; i < nreq; i++ {
		s := rng.Intn(nsess)
		op := proto.Op(rng.Intn(4))
		payload = payload[:0]
		if op == proto.OpAdd {
			payload = proto.AppendAddRequest(payload, 300000, ids[s], datas[s])
		} else {
			payload = append(payload, ids[s]...)
		}
		stream, _ = proto.AppendMessage(stream, &proto.Message{UID: uint32(i), Op: op, Payload: payload})
	}
	c := cache.New(cache.Config{MaxSessions: 60000})
	h := &store.Handler{Store: c.Store()}
	rd := proto.NewReader(&loopReader{b: stream, chunk: 1 << 16}, proto.WantRequests)
	ctx := context.Background()
	var out, resp []byte
	var bytes int64
	serve := func() {
		m, err := rd.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		resp, err = h.Handle(ctx, m, resp[:0])
		if err != nil {
			b.Fatal(err)
		}
		out, _ = proto.AppendMessage(out[:0], &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: resp})
		bytes += int64(len(out))
	}
	for i := 0; i < nreq; i++ { // warm the cache and the buffers
		serve()
	}
	b.ReportAllocs()
	stop := cpumeter.Start(b)
	for i := 0; i < b.N; i++ {
		serve()
	}
	stop()
	b.ReportMetric(float64(bytes)/float64(b.N+nreq), "Bout/op")
}
