// SPDX-License-Identifier: Apache-2.0

// Command dc_test exercises a distcache server (or a dc_client proxy in
// front of one) with a random mix of add, get, remove and have operations
// on a set of fake sessions, checks every answer against a local model of
// what the cache must hold, and reports throughput and latency (see
// dc_test(1)). It exits 1 at the first wrong answer.
package main

import (
	"bytes"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tool"
	"github.com/distcache-go/distcache/goimpl/client/dcctx"
)

const usage = `Usage: dc_test -connect <addr> [options]
where options include:
   -connect <addr>   the server or proxy to test (required)
   -sessions <num>   number of fake sessions per client (default 10, 1 to 512)
   -datamin <num>    minimum session data length (default 50, at least 4)
   -datamax <num>    session data length bound (default 2100, at most 4096)
   -timeout <secs>   mean session lifetime (default 60, at most 3600)
   -timevar <secs>   lifetime spread (default 5, smaller than -timeout)
   -ops <num>        number of random operations, shared among the clients
                     (default 10*sessions^2, at most 1000000)
   -progress <num>   print a line every <num> operations (default 0: a line
                     every 2 seconds on long runs)
   -persistent       use one persistent connection per client
   -time <secs>      stop after this many seconds even if -ops are not done
                     (default 0 = no limit; SIGINT or SIGTERM also stops
                     the run, with its summary)
   -clients <num>    concurrent clients, each with its own sessions (default 1)
   -withcert <num>   not available (no OpenSSL support)
   -version          print the version and exit
   -h, -help, -?     this help
`

type config struct {
	connect    string
	sessions   int
	datamin    int
	datamax    int
	timeout    int
	timevar    int
	ops        int64
	opsSet     bool
	progress   int64
	persistent bool
	clients    int
	seconds    int64
}

func parseArgs() *config {
	c := &config{sessions: 10, datamin: 50, datamax: 2100, timeout: 60, timevar: 5, clients: 1}
	a := tool.NewArgs(os.Args[1:], usage)
	for a.Next() {
		switch a.Opt() {
		case "-connect":
			c.connect = a.Value()
		case "-sessions":
			c.sessions = int(a.Int(1, 512))
		case "-datamin":
			c.datamin = int(a.Int(-1<<31, 1<<31))
			if c.datamin < 4 {
				a.Fail("Error, -datamin should be at least 4")
			}
		case "-datamax":
			c.datamax = int(a.Int(-1<<31, 1<<31))
			if c.datamax > 4096 {
				a.Fail("Error, -datamax should be at most 4096")
			}
		case "-withcert":
			a.Value()
			a.Fail("Error, no OpenSSL support compiled in, -with-cert not available.")
		case "-timeout":
			c.timeout = int(a.Int(0, 3600))
		case "-timevar":
			c.timevar = int(a.Int(0, 3600))
		case "-progress":
			c.progress = a.Int(0, 1000000)
		case "-ops":
			c.ops = a.Int(0, 1000000)
			c.opsSet = true
		case "-persistent":
			c.persistent = true
		case "-time":
			c.seconds = a.Int(0, 86400)
		case "-clients":
			c.clients = int(a.Int(1, 1000))
		default:
			a.Unknown()
		}
	}
	if c.connect == "" {
		a.Fail("Error, must provide -connect")
	}
	if c.timevar >= c.timeout {
		a.Fail("Error, -timevar must be strictly smaller than -timeout")
	}
	if c.datamin > c.datamax {
		a.Fail("Error, -datamin must not be greater than -datamax")
	}
	if !c.opsSet {
		c.ops = 10 * int64(c.sessions) * int64(c.sessions)
	}
	return c
}

// session is one fake session and what the cache should know about it.
type session struct {
	id, data []byte
	inCache  bool
}

// worker is one client with its own context, sessions and random source.
type worker struct {
	cfg      *config
	ctx      *dcctx.Ctx
	rng      *rand.Rand
	sessions []session
	lat      []time.Duration
	buf      []byte
	passed   int64
}

func newRand() *rand.Rand {
	var seed [16]byte
	if _, err := crand.Read(seed[:]); err != nil {
		fmt.Fprintln(os.Stderr, "Warning - no random seed, will generate repeating sequence!!!")
	}
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
}

func newWorker(cfg *config, flags uint32) *worker {
	// Without -persistent: a connection per operation, as the original
	// dc_test made (the library would keep its connection otherwise).
	// Every failed operation ends the test, so a slow answer (a loaded
	// machine, a server re-executing itself) is waited for with fixed
	// bounds (2 s to connect, 3 s for the answer), not given up on after
	// the library's adaptive 100 ms, unless the environment sets the
	// library's bounds.
	opt := dcctx.Options{ConnPerOp: true}
	if os.Getenv(dcctx.EnvTimeout) == "" && os.Getenv(dcctx.EnvIOTimeout) == "" && os.Getenv(dcctx.EnvConnectTimeout) == "" {
		opt.ConnectTimeout, opt.IOTimeout = 2*time.Second, 3*time.Second
	}
	ctx, err := dcctx.New(cfg.connect, flags, &opt)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error, 'DC_CTX' creation failed: %v\n", err)
		os.Exit(1)
	}
	w := &worker{cfg: cfg, ctx: ctx, rng: newRand(), buf: make([]byte, 32768)}
	for range cfg.sessions {
		s := session{id: make([]byte, 10+w.rng.IntN(54))}
		s.data = make([]byte, cfg.datamin+int(float64(cfg.datamax-cfg.datamin)*w.rng.Float64()))
		crand.Read(s.id)
		crand.Read(s.data)
		w.sessions = append(w.sessions, s)
	}
	return w
}

var (
	totalOps atomic.Int64
	failed   atomic.Bool
	stopped  atomic.Bool // SIGINT or SIGTERM
	deadline time.Time   // -time
)

// run does n random tests; it returns an error message at the first wrong
// answer.
func (w *worker) run(n int64, tick func(int64)) string {
	cfg := w.cfg
	w.lat = make([]time.Duration, 0, n)
	for i := int64(0); i < n; i++ {
		if failed.Load() || stopped.Load() || (i%64 == 0 && !deadline.IsZero() && time.Now().After(deadline)) {
			return ""
		}
		s := &w.sessions[w.rng.IntN(len(w.sessions))]
		op := w.rng.IntN(4)
		timeout := uint64(1000 * (cfg.timeout - cfg.timevar))
		if cfg.timevar > 0 {
			timeout += uint64(w.rng.IntN(2000 * cfg.timevar))
		}
		start := time.Now()
		msg := ""
		switch op {
		case 0:
			ok := w.ctx.AddSession(s.id, s.data, timeout)
			switch {
			case ok && s.inCache:
				msg = "Error, add succeeded and shouldn't have!"
			case !ok && !s.inCache:
				msg = "Error, add failed!"
			}
			if ok {
				s.inCache = true
			}
		case 1:
			ok := w.ctx.RemoveSession(s.id)
			switch {
			case !ok && s.inCache:
				msg = "Error, remove failed!"
			case ok && !s.inCache:
				msg = "Error, remove succeeded and shouldn't have!"
			}
			if ok {
				s.inCache = false
			}
		case 2:
			used, ok := w.ctx.GetSession(s.id, w.buf)
			switch {
			case !ok && s.inCache:
				msg = "Error, get failed!"
			case ok && s.inCache && (used > len(w.buf) || !bytes.Equal(w.buf[:used], s.data)):
				msg = "Error, received mismatched session"
			case ok && !s.inCache:
				msg = "Error, get succeeded and shouldn't have!"
			}
		case 3:
			r := w.ctx.HasSession(s.id)
			switch {
			case r < 0:
				msg = "Error, transaction failure"
			case r == 0 && s.inCache:
				msg = "Error, have failed!"
			case r == 1 && !s.inCache:
				msg = "Error, have succeeded and shouldn't have!"
			}
		}
		w.lat = append(w.lat, time.Since(start))
		if msg != "" {
			return msg
		}
		w.passed++
		tick(totalOps.Add(1))
	}
	return ""
}

func main() {
	cfg := parseArgs()
	var flags uint32
	if cfg.persistent {
		flags = dcctx.FlagPersistent
	}
	workers := make([]*worker, cfg.clients)
	for i := range workers {
		workers[i] = newWorker(cfg, flags)
	}
	total := cfg.ops
	fmt.Fprintf(os.Stderr, "Info, %d sessions generated, will run %d random tests\n", cfg.sessions*cfg.clients, total)

	// A signal ends the run as -time does: the operations so far are
	// summarised and the exit status says whether they were all right.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		stopped.Store(true)
	}()
	var plock sync.Mutex
	start := time.Now()
	if cfg.seconds > 0 {
		deadline = start.Add(time.Duration(cfg.seconds) * time.Second)
	}
	lastPrint := start
	tick := func(n int64) {
		if cfg.progress > 0 {
			if n%cfg.progress == 0 {
				fmt.Fprintf(os.Stderr, "Info, total operations = %7d\n", n)
			}
			return
		}
		if n%256 != 0 {
			return
		}
		plock.Lock()
		if now := time.Now(); now.Sub(lastPrint) >= 2*time.Second {
			lastPrint = now
			fmt.Fprintf(os.Stderr, "Info, total operations = %7d  (%.0f ops/s)\n", n, float64(n)/now.Sub(start).Seconds())
		}
		plock.Unlock()
	}

	var wg sync.WaitGroup
	var firstErr atomic.Value
	for i, w := range workers {
		n := total / int64(cfg.clients)
		if int64(i) < total%int64(cfg.clients) {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if msg := w.run(n, tick); msg != "" {
				if firstErr.CompareAndSwap(nil, msg) {
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	var lat []time.Duration
	var passed int64
	for _, w := range workers {
		lat = append(lat, w.lat...)
		passed += w.passed
		w.ctx.Close()
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)] }
		fmt.Fprintf(os.Stderr, "Info, %d operations in %.3f s by %d client(s): %.0f ops/s, latency p50 %v, p99 %v, max %v\n",
			len(lat), elapsed.Seconds(), cfg.clients, float64(len(lat))/elapsed.Seconds(),
			pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	}
	if msg, _ := firstErr.Load().(string); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		fmt.Fprintf(os.Stderr, "Info, %d tests succeeded before the first failure\n", passed)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "Info, all tests complete")
}
