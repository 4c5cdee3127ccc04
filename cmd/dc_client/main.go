// Command dc_client is the local distcache proxy: applications connect to
// it on a local (normally unix) socket, and it forwards their requests over
// one persistent connection to a dc_server, rewriting request uids and
// mapping the responses back (see dc_client(8)).
//
// When the server is unreachable every request is answered at once with an
// empty response, and the connection is retried every -retry milliseconds;
// requests in flight when the server connection dies get DC_ERR_DISCONNECTED
// (0x02). A local client that goes away mid-request only loses its answer.
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tool"
	"github.com/distcache-go/distcache/goimpl/proto"
)

const usage = `Usage: dc_client -server <addr> [options]
where options include:
   -listen <addr>        the local address to listen on (default UNIX:/tmp/scache)
   -server <addr>        the cache server to connect to (required)
   -connect <addr>       same as -server
   -retry <msecs>        reconnect interval after losing the server (default 5000)
   -idle <msecs>         drop local clients idle this long (default 0 = never)
   -maxclients <num>     maximum local client connections (default 1024)
   -reqtimeout <msecs>   consider the server connection dead when a request
                         has had no answer for this long (default 10000,
                         0 = wait for ever as the original did)
   -inflight <num>       maximum requests in flight to the server (default 512;
                         1 for an original distcache 1.5 dc_server, which
                         drops pipelined requests behind large answers)
   -daemon               detach and run in the background
   -user <user>          run as this user (and its groups)
   -sockowner <user>     owner of the unix socket
   -sockgroup <group>    group of the unix socket
   -sockperms <octal>    permissions of the unix socket
   -pidfile <path>       write the process id to this file
   -killable             exit cleanly on SIGUSR1 or SIGUSR2
   -h, -help, -?         this help
`

// defaultInflight caps the requests in flight upstream, as the original's
// MULTIPLEXER_MAX_ITEMS; further requests wait for a slot.
const defaultInflight = 512

type config struct {
	listen     string
	server     string
	retry      time.Duration
	idle       time.Duration
	maxClients int64
	inflight   int64
	reqTimeout time.Duration
	daemon     tool.Daemon
}

func parseArgs() (*config, *tool.Args) {
	c := &config{listen: "UNIX:/tmp/scache", retry: 5 * time.Second, maxClients: 1024, inflight: defaultInflight, reqTimeout: 10 * time.Second}
	a := tool.NewArgs(os.Args[1:], usage)
	for a.Next() {
		if c.daemon.Option(a) {
			continue
		}
		switch a.Opt() {
		case "-listen":
			c.listen = a.AddrValue()
		case "-server", "-connect":
			v := a.AddrValue()
			if c.server != "" {
				fmt.Fprintln(os.Stderr, "Error, too many servers")
				a.Invalid()
			}
			c.server = v
		case "-retry":
			c.retry = time.Duration(a.Int(1, 3600000)) * time.Millisecond
		case "-idle":
			c.idle = time.Duration(a.Int(0, 3600000)) * time.Millisecond
		case "-maxclients":
			c.maxClients = a.Int(1, 1000000)
		case "-reqtimeout":
			c.reqTimeout = time.Duration(a.Int(0, 3600000)) * time.Millisecond
		case "-inflight":
			c.inflight = a.Int(1, 65536)
		default:
			a.Unknown()
		}
	}
	if c.server == "" {
		a.Fail("Error, no server specified!")
	}
	return c, a
}

func main() {
	cfg, args := parseArgs()
	// Catch signals first: one sent while starting up is acted on once
	// the server runs, instead of killing it half-initialised.
	sigs := cfg.daemon.Signals()
	cfg.daemon.Check()
	srvAddr, err := tool.ParseAddr(cfg.server)
	if err == nil && !srvAddr.CanConnect() {
		err = errors.New("not an address one can connect to")
	}
	if err != nil {
		tool.Die("Error, internal initialisation problems: -server '%s': %v", cfg.server, err)
	}
	ln, files, err := cfg.daemon.Listen(cfg.listen)
	if err != nil {
		tool.Die("Error, bad listen address '%s': %v", cfg.listen, err)
	}
	cfg.daemon.Start(args.Rewritten(), files)

	p := &proxy{cfg: cfg, up: newUpstream(srvAddr, cfg.retry, int(cfg.inflight), cfg.reqTimeout)}
	p.set = tool.ConnSet{Max: int(cfg.maxClients), Log: &p.log, OnFull: func(net.Conn) {
		p.log.Printf("Error, rejected new client connection already at maximum (%d)", cfg.maxClients)
	}}
	go p.up.run()
	done := make(chan struct{})
	go func() {
		p.set.Serve(ln, func(nc net.Conn) { newClient(p, nc).serve() })
		close(done)
	}()
	select {
	case <-sigs:
	case <-done:
		if !p.set.Closing() {
			fmt.Fprintln(os.Stderr, "Error, the listener failed; shutting down")
		}
	}
	// Let every client finish the request it is waiting for.
	p.set.Shutdown(ln, 5*time.Second)
	ln.RemoveSocket()
	cfg.daemon.RemovePIDFile()
	os.Exit(0)
}

type proxy struct {
	cfg *config
	up  *upstream
	log tool.RateLog
	set tool.ConnSet
}

// client is one local connection. It is served one request at a time, in
// order: the next request is read only after the previous answer has been
// written (so pipelining works and responses never interleave, E-4). Its
// buffers are recycled when the application closes cleanly, since most
// applications connect once per operation.
type client struct {
	p     *proxy
	nc    net.Conn
	rd    *proto.Reader
	out   []byte // response encoding
	wbuf  []byte // upstream request encoding
	first bool   // a Read call already happened for the current request
	call  call   // the one request this client has in flight
	rdl   time.Time
	wdl   time.Time
}

var clientPool sync.Pool

func newClient(p *proxy, nc net.Conn) *client {
	if c, ok := clientPool.Get().(*client); ok {
		c.p, c.nc = p, nc
		return c
	}
	c := &client{p: p, nc: nc}
	c.rd = proto.NewReader(c, proto.WantRequests)
	c.call.resp = make(chan []byte, 1)
	return c
}

var errClosing = errors.New("shutting down")

// Read arms the -idle deadline before waiting for a new request.
func (c *client) Read(b []byte) (int, error) {
	var dl time.Time
	if !c.first && c.p.cfg.idle > 0 {
		dl = time.Now().Add(c.p.cfg.idle)
	}
	c.first = true
	if !dl.Equal(c.rdl) {
		c.rdl = dl
		c.nc.SetReadDeadline(dl)
	}
	if c.p.set.Closing() {
		return 0, errClosing
	}
	return c.nc.Read(b)
}

// clientWriteTimeout bounds how long an application may leave its answer
// unread.
const clientWriteTimeout = 30 * time.Second

func (c *client) serve() {
	clean := false
	defer func() {
		c.nc.Close()
		if clean && c.rd.Buffered() == 0 && cap(c.out) <= 64<<10 && cap(c.wbuf) <= 64<<10 {
			*c = client{rd: c.rd, out: c.out[:0], wbuf: c.wbuf[:0], call: call{resp: c.call.resp, buf: c.call.buf[:0]}}
			clientPool.Put(c)
		}
	}()
	for {
		c.first = c.rd.Buffered() > 0
		m, err := c.rd.ReadMessage()
		if err != nil {
			if proto.IsCorrupt(err) {
				c.p.log.Printf("Warning, closing local client: %v", err)
			}
			clean = err == io.EOF
			return
		}
		payload := c.p.up.roundTrip(&c.call, m.Op, m.Payload, &c.wbuf)
		c.out, _ = proto.AppendMessage(c.out[:0], &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: payload})
		if now := time.Now(); c.wdl.Sub(now) < clientWriteTimeout/2 {
			c.wdl = now.Add(clientWriteTimeout)
			c.nc.SetWriteDeadline(c.wdl)
		}
		if _, err := c.nc.Write(c.out); err != nil {
			return
		}
	}
}

// upstream is the one connection to the cache server, shared by all local
// clients. Requests get fresh uids (uint32, wrapping, E-8); responses are
// matched by uid and checked against the request's operation; anything
// else is a corrupt server stream (E-6): the connection is dropped and the
// requests in flight get 0x02.
type upstream struct {
	addr       tool.Addr
	retry      time.Duration
	reqTimeout time.Duration
	log        tool.RateLog
	slots      chan struct{}
	kick       chan struct{}

	wmu sync.Mutex // serialises writes to the server

	mu      sync.Mutex
	nc      net.Conn // nil while disconnected
	gen     uint64
	nextUID uint32
	// when the current (or last) connection was made
	connectedAt time.Time
	pending     map[uint32]*call
	// state for logging changes only (E-46)
	lastErr string
}

// call is a request in flight. Each local client owns one and reuses it:
// it waits for the answer before it sends another request.
type call struct {
	op   proto.Op
	sent time.Time
	resp chan []byte // buffered, 1
	buf  []byte      // the answer's payload, copied out of the reader
}

var (
	emptyPayload = []byte{}
	disconnected = []byte{proto.ResultDisconnected}
)

func newUpstream(a tool.Addr, retry time.Duration, inflight int, reqTimeout time.Duration) *upstream {
	return &upstream{addr: a, retry: retry, reqTimeout: reqTimeout, nextUID: 1, pending: make(map[uint32]*call),
		slots: make(chan struct{}, inflight), kick: make(chan struct{}, 1)}
}

// run keeps the upstream connection: it connects at once, and again every
// retry interval while disconnected.
func (u *upstream) run() {
	if u.reqTimeout > 0 {
		go u.watchdog()
	}
	for {
		u.mu.Lock()
		up := u.nc != nil
		u.mu.Unlock()
		if !up {
			u.connect()
		}
		select {
		case <-time.After(u.retry):
		case <-u.kick:
			// Lost the connection. One that had been up for a while (a
			// server closing idle connections, a restart) is re-made at
			// once; one that just failed waits a retry interval.
			u.mu.Lock()
			upFor := time.Since(u.connectedAt)
			u.mu.Unlock()
			if upFor < min(u.retry, time.Second) {
				time.Sleep(u.retry)
			}
		}
	}
}

// watchdog drops a server connection that has left a request unanswered
// for -reqtimeout: a server that accepts but never answers (hung, or a
// black hole) would otherwise hold every application's request (E-11).
func (u *upstream) watchdog() {
	tick := u.reqTimeout / 4
	if tick < 10*time.Millisecond {
		tick = 10 * time.Millisecond
	} else if tick > time.Second {
		tick = time.Second
	}
	for range time.Tick(tick) {
		u.mu.Lock()
		gen, stale := u.gen, false
		if u.nc != nil {
			limit := time.Now().Add(-u.reqTimeout)
			for _, c := range u.pending {
				if c.sent.Before(limit) {
					stale = true
					break
				}
			}
		}
		u.mu.Unlock()
		if stale {
			u.fail(gen, fmt.Errorf("no answer within -reqtimeout %v", u.reqTimeout))
		}
	}
}

func (u *upstream) connect() {
	timeout := u.retry
	if timeout < time.Second {
		timeout = time.Second
	} else if timeout > 5*time.Second {
		timeout = 5 * time.Second
	}
	nc, err := u.addr.Dial(timeout)
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		if msg := err.Error(); msg != u.lastErr {
			u.lastErr = msg
			u.log.Printf("Warning, can't connect to the server '%s': %v (retrying every %v)", u.addr.Str, err, u.retry)
		}
		return
	}
	u.lastErr = ""
	fmt.Fprintf(os.Stderr, "Info, connected to the server '%s'\n", u.addr.Str)
	u.nc = nc
	u.connectedAt = time.Now()
	u.gen++
	go u.readLoop(nc, u.gen)
}

// readLoop delivers the responses of one upstream connection.
func (u *upstream) readLoop(nc net.Conn, gen uint64) {
	rd := proto.NewReader(nc, proto.WantResponses)
	for {
		m, err := rd.ReadMessage()
		if err != nil {
			if err == io.EOF {
				err = errors.New("the server closed the connection")
			}
			u.fail(gen, err)
			return
		}
		u.mu.Lock()
		c, ok := u.pending[m.UID]
		if !ok || c.op != m.Op {
			u.mu.Unlock()
			u.fail(gen, fmt.Errorf("the server answered uid %d op %v, which was not asked", m.UID, m.Op))
			return
		}
		delete(u.pending, m.UID)
		u.mu.Unlock()
		c.buf = append(c.buf[:0], m.Payload...)
		c.resp <- c.buf
		<-u.slots
	}
}

// fail drops connection generation gen and answers its requests with 0x02.
func (u *upstream) fail(gen uint64, err error) {
	u.mu.Lock()
	if u.gen != gen || u.nc == nil {
		u.mu.Unlock()
		return
	}
	u.nc.Close()
	u.nc = nil
	n := len(u.pending)
	for uid, c := range u.pending {
		delete(u.pending, uid)
		c.resp <- disconnected
		<-u.slots
	}
	u.mu.Unlock()
	u.log.Printf("Warning, lost the server '%s': %v (%d requests failed)", u.addr.Str, err, n)
	select {
	case u.kick <- struct{}{}:
	default:
	}
}

// roundTrip forwards one request and returns the payload for the local
// client's response. wbuf is the caller's encoding buffer. The write is
// done outside u.mu, so that the response reader is never held up by a
// writer waiting for a server that is itself waiting for us to read.
func (u *upstream) roundTrip(c *call, op proto.Op, payload []byte, wbuf *[]byte) []byte {
	u.slots <- struct{}{}
	u.mu.Lock()
	if u.nc == nil {
		u.mu.Unlock()
		<-u.slots
		return emptyPayload
	}
	uid := u.nextUID
	for {
		if _, busy := u.pending[uid]; !busy {
			break
		}
		uid++
	}
	u.nextUID = uid + 1
	c.op, c.sent = op, time.Now()
	u.pending[uid] = c
	nc, gen := u.nc, u.gen
	u.mu.Unlock()

	var err error
	*wbuf, err = proto.AppendMessage((*wbuf)[:0], &proto.Message{UID: uid, Op: op, Payload: payload})
	if err == nil {
		u.wmu.Lock()
		nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err = nc.Write(*wbuf)
		u.wmu.Unlock()
	}
	if err != nil {
		u.fail(gen, err)
	}
	return <-c.resp
}
