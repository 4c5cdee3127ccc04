// Command dc_server is the distcache session cache server: it listens on a
// distcache address and answers ADD, GET, REMOVE and HAVE requests from a
// session cache held in memory (see dc_server(8)).
//
// Each connection is served by its own goroutine, which reads requests in
// order and answers them in order; pipelined requests are answered in one
// batch write. A malformed stream loses its connection, never the server.
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tool"
	"github.com/distcache-go/distcache/goimpl/proto"
)

const usage = `Usage: dc_server -listen <addr> [options]
where options include:
   -listen <addr>       the address to listen on (required)
   -sessions <num>      maximum number of sessions cached (default 100000,
                        64 to 100000000)
   -maxbytes <num>      maximum bytes of cached sessions (default 256M;
                        suffixes k, M, G; 0 = no byte limit)
   -minlifetime <secs>  lifetime given to sessions added with a timeout under
                        1000 ms (httpd 2.4 sends only the milliseconds part of
                        its timeout; default 300, 0 = store as sent)
   -progress <num>      also log every <num> operations (0 = off)
   -idle <msecs>        close connections idle this long (default 0 = never)
   -frametimeout <msecs> close a connection whose started request does not
                        complete, or whose response is not taken, in this
                        time (default 10000)
   -maxconns <num>      maximum simultaneous connections (default 0 = no limit)
   -sessiond <addr>     also serve stunnel's sessiond protocol (UDP) from the
                        same cache on this address (IP:host:port)
   -daemon              detach and run in the background
   -user <user>         run as this user (and its groups)
   -sockowner <user>    owner of the unix socket
   -sockgroup <group>   group of the unix socket
   -sockperms <octal>   permissions of the unix socket
   -pidfile <path>      write the process id to this file
   -killable            exit cleanly on SIGUSR1 or SIGUSR2
   -version             print the version and exit
   -h, -help, -?        this help
`

type config struct {
	listen       string
	sessions     int64
	maxBytes     int64
	minLifetime  int64
	progress     int64
	idle         time.Duration
	frameTimeout time.Duration
	maxConns     int64
	sessiond     string
	daemon       tool.Daemon
}

func parseArgs() (*config, *tool.Args) {
	c := &config{sessions: 100000, maxBytes: 256 << 20, minLifetime: 300, frameTimeout: 10 * time.Second}
	a := tool.NewArgs(os.Args[1:], usage)
	for a.Next() {
		if c.daemon.Option(a) {
			continue
		}
		switch a.Opt() {
		case "-listen":
			c.listen = a.AddrValue()
		case "-sessions":
			c.sessions = a.Int(64, 100000000)
		case "-maxbytes":
			n, ok := parseBytes(a.Value())
			if !ok {
				a.Invalid()
			}
			c.maxBytes = n
		case "-minlifetime":
			c.minLifetime = a.Int(0, proto.MaxExpiry/1000)
		case "-progress":
			c.progress = a.Int(0, 1000000)
		case "-idle":
			c.idle = time.Duration(a.Int(0, 86400000)) * time.Millisecond
		case "-frametimeout":
			c.frameTimeout = time.Duration(a.Int(1, 3600000)) * time.Millisecond
		case "-maxconns":
			c.maxConns = a.Int(0, 10000000)
		case "-sessiond":
			c.sessiond = a.Value()
		default:
			a.Unknown()
		}
	}
	if c.listen == "" {
		a.Fail("Error, must provide -listen")
	}
	return c, a
}

// parseBytes reads a byte count with an optional k/M/G suffix.
func parseBytes(s string) (int64, bool) {
	mul := int64(1)
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mul = 1 << 10
	case strings.HasSuffix(s, "m"), strings.HasSuffix(s, "M"):
		mul = 1 << 20
	case strings.HasSuffix(s, "g"), strings.HasSuffix(s, "G"):
		mul = 1 << 30
	}
	if mul != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mul {
		return 0, false
	}
	return n * mul, true
}

func main() {
	cfg, args := parseArgs()
	// Catch signals first: one sent while starting up is acted on once
	// the server runs, instead of killing it half-initialised.
	sigs := cfg.daemon.Signals()
	cfg.daemon.Check()

	ln, files, err := cfg.daemon.Listen(cfg.listen)
	if err != nil {
		tool.Die("Error, can't listen on '%s': %v", cfg.listen, err)
	}
	be := newBackend(cfg)
	sd, sdFile, err := startSessiond(cfg, be)
	if err != nil {
		ln.RemoveSocket()
		tool.Die("Error, can't serve sessiond on '%s': %v", cfg.sessiond, err)
	}
	if sdFile != nil {
		files = append(files, sdFile)
	}
	cfg.daemon.Start(args.Rewritten(), files)

	s := &server{cfg: cfg, be: be}
	s.set = tool.ConnSet{Max: int(cfg.maxConns), Log: &s.log, OnFull: func(nc net.Conn) {
		s.log.Printf("Warning, rejected connection from %s: already at -maxconns %d", peer(nc), cfg.maxConns)
	}}
	acceptDone := make(chan struct{})
	go func() {
		s.set.Serve(ln, func(nc net.Conn) { newConn(s, nc).serve() })
		close(acceptDone)
	}()
	logTick := time.NewTicker(500 * time.Millisecond)
	lg := newProgress(cfg.progress)
	for {
		select {
		case <-logTick.C:
			lg.maybeLog(s.ops.Load(), be)
			continue
		case <-sigs:
		case <-acceptDone:
			if !s.set.Closing() {
				fmt.Fprintln(os.Stderr, "Error, the listener failed; shutting down")
			}
		}
		break
	}
	// Interrupt every connection's next read and wait (bounded by the frame
	// timeout) for the requests already received to be answered.
	s.set.Shutdown(ln, cfg.frameTimeout+time.Second)
	if sd != nil {
		sd()
	}
	hits, misses := be.hitsMisses()
	fmt.Fprintf(os.Stderr, "Info, shutting down: total operations = %d, total sessions = %d, hits = %d, misses = %d\n",
		s.ops.Load(), be.items(time.Now()), hits, misses)
	ln.RemoveSocket()
	cfg.daemon.RemovePIDFile()
	os.Exit(0)
}

// progress prints the original's periodic line, plus hit and miss counts.
type progress struct {
	every     int64
	last      time.Time
	lastOps   uint64
	lastItems int
	lastStep  uint64
}

func newProgress(every int64) *progress { return &progress{every: every, last: time.Now()} }

func (p *progress) maybeLog(ops uint64, be *backend) {
	now := time.Now()
	items := be.items(now)
	print := now.Sub(p.last) >= time.Second && items != p.lastItems
	if p.every > 0 && ops/uint64(p.every) != p.lastStep {
		print = true
	}
	if !print {
		return
	}
	sign, diff := '=', 0
	if items > p.lastItems {
		sign, diff = '+', items-p.lastItems
	} else if items < p.lastItems {
		sign, diff = '-', p.lastItems-items
	}
	hits, misses := be.hitsMisses()
	fmt.Fprintf(os.Stderr, "Info, total operations = %7d  (+ %5d), total sessions = %5d  (%c%3d), hits = %d, misses = %d\n",
		ops, ops-p.lastOps, items, sign, diff, hits, misses)
	p.last, p.lastOps, p.lastItems = now, ops, items
	if p.every > 0 {
		p.lastStep = ops / uint64(p.every)
	}
}

type server struct {
	cfg *config
	be  *backend
	ops atomic.Uint64
	log tool.RateLog
	set tool.ConnSet
}

func peer(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		return a.String()
	}
	return "local client"
}

// conn is one client connection. Its buffers are recycled through
// connPool when the client closes cleanly, so that clients opening a
// connection per operation (Apache through dc_client) cost no large
// allocations.
type conn struct {
	s        *server
	nc       net.Conn
	rd       *proto.Reader
	out      []byte // encoded responses not yet written
	payload  []byte // response payload scratch
	reads    int    // Read calls during the current ReadMessage
	msgStart time.Time
	timedOut string
	rdl, wdl time.Time // deadlines currently set on nc
}

var connPool sync.Pool

func newConn(s *server, nc net.Conn) *conn {
	if c, ok := connPool.Get().(*conn); ok {
		c.s, c.nc = s, nc
		return c
	}
	c := &conn{s: s, nc: nc}
	c.rd = proto.NewReader(c, proto.WantRequests)
	return c
}

// recycle returns the connection's buffers to the pool. Only for a reader
// that ended at a clean end of stream (nothing buffered, no partial
// message); oversized buffers are left to the garbage collector.
func (c *conn) recycle() {
	if c.rd.Buffered() != 0 || cap(c.out) > 256<<10 {
		return
	}
	*c = conn{rd: c.rd, out: c.out[:0], payload: c.payload[:0]}
	connPool.Put(c)
}

var errClosing = errors.New("server shutting down")

// Read is what the proto.Reader reads through. It writes the responses
// queued so far before every read that may block, so pipelined requests
// get one batched write and a client never waits for an answer that sits
// in our buffer. It also arms the idle and partial-request deadlines.
func (c *conn) Read(p []byte) (int, error) {
	if len(c.out) > 0 {
		if err := c.flush(); err != nil {
			return 0, err
		}
	}
	s := c.s
	var dl time.Time
	if c.reads == 0 && c.rd.Buffered() == 0 {
		c.msgStart = time.Time{}
		if s.cfg.idle > 0 {
			dl = time.Now().Add(s.cfg.idle)
			c.timedOut = "idle"
		}
	} else {
		if c.msgStart.IsZero() {
			c.msgStart = time.Now()
		}
		dl = c.msgStart.Add(s.cfg.frameTimeout)
		c.timedOut = "partial request"
	}
	c.reads++
	if !dl.Equal(c.rdl) {
		c.rdl = dl
		c.nc.SetReadDeadline(dl)
	}
	if s.set.Closing() {
		return 0, errClosing
	}
	return c.nc.Read(p)
}

// flush writes the queued responses. The write deadline (a client must
// take its answers within -frametimeout) is renewed only when less than
// half of it is left, which keeps the timer work off the common path.
func (c *conn) flush() error {
	ft := c.s.cfg.frameTimeout
	if now := time.Now(); c.wdl.Sub(now) < ft/2 {
		c.wdl = now.Add(ft)
		c.nc.SetWriteDeadline(c.wdl)
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	if err != nil {
		c.timedOut = "response not taken"
	}
	return err
}

func (c *conn) serve() {
	s := c.s
	clean := false
	defer func() {
		c.nc.Close()
		if clean {
			c.recycle()
		}
	}()
	for {
		c.reads = 0
		m, err := c.rd.ReadMessage()
		if err != nil {
			clean = err == io.EOF && len(c.out) == 0
			c.report(err)
			return
		}
		payload, err := s.be.handle(m, c.payload[:0])
		if payload != nil {
			c.payload = payload
		}
		if err != nil {
			s.log.Printf("Warning, closing connection from %s: %v", peer(c.nc), err)
			c.flush()
			return
		}
		c.out, _ = proto.AppendMessage(c.out, &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: payload})
		s.ops.Add(1)
		if len(c.out) >= 64<<10 {
			if err := c.flush(); err != nil {
				c.report(err)
				return
			}
		}
	}
}

// report logs why a connection ends, when that is worth knowing.
func (c *conn) report(err error) {
	if len(c.out) > 0 {
		c.flush() // answers owed before a corrupt frame or a half-close (E-12, E-38)
	}
	var ne net.Error
	switch {
	case err == io.EOF, errors.Is(err, errClosing), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
	case proto.IsCorrupt(err):
		c.s.log.Printf("Warning, closing connection from %s: %v", peer(c.nc), err)
	case err == io.ErrUnexpectedEOF:
		c.s.log.Printf("Warning, connection from %s closed in the middle of a request", peer(c.nc))
	case errors.As(err, &ne) && ne.Timeout():
		if c.timedOut != "idle" && !c.s.set.Closing() {
			c.s.log.Printf("Warning, closing connection from %s: %s timed out", peer(c.nc), c.timedOut)
		}
	default:
		if !c.s.set.Closing() {
			c.s.log.Printf("Warning, connection from %s: %v", peer(c.nc), err)
		}
	}
}
