// SPDX-License-Identifier: Apache-2.0

// Command dc_server is the distcache session cache server: it listens on a
// distcache address and answers ADD, GET, REMOVE and HAVE requests from a
// session cache held in memory (see dc_server(8)). It parses its options
// and wires the cache (goimpl/cache) into the serving loop (goimpl/dcserver).
//
// With -backend and a Redis address it keeps its listeners (distcache and
// sessiond) but stores every session in Redis (goimpl/redisstore), so that
// several dc_servers, stunnel, C clients and dc_clients share one
// replicated store; -sessions and -maxbytes do not apply then (Redis's own
// maxmemory does), and -sealkey seals what goes to Redis.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/redisflag"
	"github.com/distcache-go/distcache/cmd/internal/tool"
	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/dcserver"
	"github.com/distcache-go/distcache/goimpl/metrics"
	"github.com/distcache-go/distcache/goimpl/nearmap"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/redisstore"
	"github.com/distcache-go/distcache/goimpl/seal"
)

const usage = `Usage: dc_server -listen <addr> [options]
where options include:
   -listen <addr>       the address to listen on (required)
   -sessions <num>      maximum number of sessions cached (default 100000,
                        64 to 100000000)
   -maxbytes <num>      memory for sessions, overheads included (default
                        256M; suffixes k, M, G; 0 = no byte limit)
   -minlifetime <secs>  lifetime given to sessions added with a timeout under
                        1000 ms (httpd 2.4 sends only the milliseconds part of
                        its timeout; default 300, 0 = store as sent)
   -progress <num>      also log every <num> operations (0 = off)
   -idle <msecs>        close connections idle this long (default 0 = never)
   -frametimeout <msecs> close a connection whose started request does not
                        complete, or whose response is not taken, in this
                        time (default 10000)
   -snapshot <file>     keep the sessions across a stop and start: written here
                        on a clean stop, read at start (mode 0600, refused if
                        others may read it; holds TLS secrets: keep it on a
                        tmpfs such as /run)
   -maxconns <num>      maximum simultaneous connections (default 1024; at the
                        limit a new one replaces a stalled or idle one;
                        0 = no limit)
   -connmem <num>       memory connections may hold beyond their base buffers
                        (default 32M; suffixes k, M, G); past it connections
                        whose answers are not taken are closed
   -nearmap             share the sessions with the programs on the unix
                        -listen socket in memory: a client of the C library
                        reads those added since the start (up to 32768 of
                        them) without asking dc_server (any process that may
                        connect to the socket can read every one; not with
                        -backend)
   -sessiond <addr>     also serve stunnel's sessiond protocol (UDP) from the
                        same cache on this address (IP:host:port)
   -tlscert <file>      serve TLS: certificate chain (PEM), with -tlskey
   -tlskey <file>       private key of -tlscert (refused if any user may
                        read it)
   -tlsca <file>        require client certificates issued by these CAs
                        (PEM): mutual TLS
   -tls12               also accept TLS 1.2 (default: TLS 1.3 only)
                        (SIGHUP reloads the TLS files)
   -sealkey <file>      seal the sessions stored outside this process (as
                        dc_client -sealkey): in the -backend store, or the
                        -snapshot file (then only ciphertext)
   -backend <addr>      keep the sessions in Redis instead of in memory (a
                        Redis address, below); a request Redis does not
                        answer within -redistimeout is answered as a miss
   -metrics <addr>      serve Prometheus metrics at /metrics and a live status
                        page at / on this address (IP:127.0.0.1:9101; off by
                        default); SIGWINCH then prints the counters to the log
   -metricspublic       allow -metrics on an address that is not loopback
   -daemon              detach and run in the background
   -user <user>         run as this user (and its groups)
   -sockowner <user>    owner of the unix socket
   -sockgroup <group>   group of the unix socket (then mode 0660)
   -sockperms <octal>   permissions of the unix socket (default 0600:
                        only this user can connect)
   -pidfile <path>      write the process id to this file
   -killable            exit cleanly on SIGUSR1 or SIGUSR2
   -version             print the version and exit
   -h, -help, -?        this help
` + redisflag.Usage

// maxNearMap bounds -nearmap's slots (2 KiB each): the sessions a local
// web server resumes are its recent ones.
const maxNearMap = 32768

type config struct {
	listen       string
	sessions     int64
	maxBytes     int64
	minLifetime  int64
	progress     int64
	idle         time.Duration
	frameTimeout time.Duration
	maxConns     int64
	snapshot     string
	connMem      int64
	sessiond     string
	backend      string
	nearMap      bool
	redis        redisflag.Config
	daemon       tool.Daemon
	secure       tool.Secure
	metrics      tool.Metrics
}

func parseArgs() (*config, *tool.Args) {
	c := &config{sessions: 100000, maxBytes: 256 << 20, minLifetime: 300, frameTimeout: 10 * time.Second,
		maxConns: dcserver.DefaultMaxConns, connMem: dcserver.DefaultConnMemory}
	a := tool.NewArgs(os.Args[1:], usage)
	for a.Next() {
		if c.daemon.Option(a) || c.secure.Option(a) || c.metrics.Option(a) || c.redis.Option(a) {
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
		case "-snapshot":
			c.snapshot = a.Value()
			// -daemon and re-exec run from "/": keep the path meaning
			// what it meant here.
			if abs, err := filepath.Abs(c.snapshot); err == nil {
				c.snapshot = abs
				a.SetValue(abs)
			}
		case "-connmem":
			n, ok := parseBytes(a.Value())
			if !ok || n < 1<<20 {
				a.Invalid()
			}
			c.connMem = n
		case "-sessiond":
			c.sessiond = a.Value()
		case "-nearmap":
			c.nearMap = true
		case "-backend":
			c.backend = a.Value()
			if _, err := redisstore.ParseAddr(c.backend); err != nil {
				fmt.Fprintf(os.Stderr, "Error, -backend: %v\n", err)
				a.Invalid()
			}
		default:
			a.Unknown()
		}
	}
	if c.listen == "" {
		a.Fail("Error, must provide -listen")
	}
	if c.nearMap && c.backend != "" {
		a.Fail("Error, -nearmap shares the sessions this process keeps in memory: not with -backend")
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
	tlsSrv := cfg.secure.Server()
	if cfg.secure.SealKey != "" && cfg.backend == "" && cfg.snapshot == "" {
		tool.Die("Error, -sealkey needs a session store outside this process (-backend) or a -snapshot file; sessions dc_server keeps in memory are not sealed")
	}
	cfg.secure.LoadSealKey()
	ln, files, err := cfg.daemon.Listen(cfg.listen)
	if err != nil {
		tool.Die("Error, can't listen on '%s': %v", cfg.listen, err)
	}
	tool.WarnExposed(ln.Where, tlsSrv != nil, cfg.sessiond)
	if cfg.nearMap && ln.Addr().Network() != "unix" {
		ln.RemoveSocket()
		tool.Die("Error, -nearmap hands the map over a unix socket: -listen '%s' is not one", cfg.listen)
	}
	sd, sdFile, err := sessiondSocket(cfg)
	if err != nil {
		ln.RemoveSocket()
		tool.Die("Error, can't serve sessiond on '%s': %v", cfg.sessiond, err)
	}
	if sdFile != nil {
		files = append(files, sdFile)
	}
	// A successor inherits the listener, the sessiond socket, then the
	// metrics listener (handoverFiles).
	cfg.metrics.Inherit = 1
	if sd != nil {
		cfg.metrics.Inherit = 2
	}
	reg := cfg.metrics.Start("dc_server", &cfg.daemon)

	opts := dcserver.Options{
		MinLifetime: time.Duration(cfg.minLifetime) * time.Second,
		// The in-memory cache takes atomically, and Redis does with
		// GETDEL (doc/EXTENSIONS.md).
		Features:     func() uint32 { return proto.FeatureTake },
		Idle:         cfg.idle,
		FrameTimeout: cfg.frameTimeout,
		MaxConns:     int(cfg.maxConns),
		ConnMemory:   cfg.connMem,
		Sessiond:     sd,
		Progress:     cfg.progress,
		TLS:          tlsSrv,
		Metrics:      reg,
		// Nothing else in this process serves clients but the metrics
		// server, whose scrapes may wait a millisecond (sessiond's
		// datagrams should not).
		HoldLastP: sd == nil,
	}
	var c *cache.Cache // the in-memory store; nil with -backend
	if cfg.backend != "" {
		rs, err := cfg.redis.Open(cfg.backend, func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
		if err != nil {
			ln.RemoveSocket()
			tool.Die("Error, -backend '%s': %v", cfg.backend, err)
		}
		// A failed request is a miss (Unavailable nil).
		opts.Store = cfg.secure.Seal(reg.WrapBackend(rs), new(tool.RateLog))
		if ss, ok := opts.Store.(*seal.Store); ok {
			reg.SealFailures(ss.Failures)
		}
	} else {
		ccfg := cache.Config{MaxSessions: int(cfg.sessions), MaxBytes: dcserver.CacheBytes(cfg.maxBytes)}
		dcserver.LimitMemory(cfg.maxBytes, cfg.maxConns, cfg.connMem)
		if reg != nil {
			ccfg.OnHit = reg.HitAge
		}
		c = cache.New(ccfg)
		reg.Cache(func() metrics.CacheStats {
			st := c.Stats()
			return metrics.CacheStats{Sessions: int64(c.NumItems(time.Now())), Bytes: st.Bytes,
				SessionsLimit: cfg.sessions, BytesLimit: ccfg.MaxBytes,
				Expired: st.Expirations, Evicted: st.Evictions, Removed: st.Removes}
		})
		opts.Store = c.Store()
		// Only this process changes the in-memory cache, so it can tell
		// subscribers (dc_client's near cache) of every removal, and
		// keep a map of it exact.
		opts.Notify = true
		if cfg.nearMap {
			m, err := nearmap.New(int(min(cfg.sessions, maxNearMap)))
			if err != nil {
				ln.RemoveSocket()
				tool.Die("Error, internal initialisation problems: -nearmap: %v", err)
			}
			opts.NearMap = m
		}
		opts.Stats = func() dcserver.Stats {
			st := c.Stats()
			return dcserver.Stats{Sessions: c.NumItems(time.Now()), Hits: st.Hits, Misses: st.Misses}
		}
	}
	// A successor started by the upgrade signal serves from the first
	// moment with every session its predecessor held (with -backend they
	// are in the backend), and with its connections.
	handover, conns := tool.HandedOver(), tool.HandedConns()
	if handover == nil && c != nil && cfg.snapshot != "" {
		loadSnapshot(cfg.snapshot, c, cfg.secure.Keys())
	}
	if handover != nil && c != nil {
		if _, err := c.ReadFrom(handover); err != nil {
			tool.Die("Error, cannot take over the sessions of the previous process: %v", err)
		}
	}
	cfg.daemon.Start(args.Rewritten(), files)
	cfg.secure.ReloadOnHUP()
	srv := dcserver.New(opts)
	if handover != nil {
		// What the predecessor stored while this process started comes
		// once it has answered its last request: until then this process
		// answers nothing (new connections wait in the listen queue).
		last := make(chan struct{})
		go func() {
			defer close(last)
			if c != nil {
				if _, err := c.ReadFrom(handover); err != nil {
					fmt.Fprintf(os.Stderr, "Warning, the last sessions of the previous process did not arrive: %v\n", err)
				}
				// What came changed the cache without the map (when it
				// came late, while this process served).
				opts.NearMap.Flush()
			}
			handover.Close()
		}()
		if conns != nil {
			tool.TakeConns(conns, last, srv.Adopt)
		}
		select {
		case <-last:
		case <-time.After(cfg.frameTimeout + 10*time.Second):
			fmt.Fprintln(os.Stderr, "Warning, the previous process has not finished handing over; serving without its last sessions")
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	go func() {
		<-sigs
		stop()
	}()
	up := tool.Upgrader{Args: args.Rewritten(),
		Files: func() ([]*os.File, error) { return handoverFiles(ln, sd, &cfg.metrics) }}
	if c != nil {
		// The copy is taken while this process serves; what changes
		// meanwhile follows once it has stopped.
		up.State = func(w io.Writer) error { _, err := c.StartCopy(w); return err }
		up.Abort = func() { c.FinishCopy(nil) }
		up.Timeout = func() time.Duration { return upgradeTimeout(c.NumItems(time.Now())) }
	}
	handed := make(chan *tool.Handed, 1)
	go func() {
		// Once the successor is ready: stop accepting, pass it every
		// connection, and stop.
		h := <-up.OnSignal()
		handed <- h
		srv.HandOver(h.Conns.Send, 500*time.Millisecond)
		cfg.metrics.Keep()
		stop()
	}()
	srv.Run(ctx, ln) // a listener failure is logged; either way, clean up and exit
	opts.Store.Close()
	cfg.metrics.Stop()
	select {
	case h := <-handed:
		// The successor has the listeners, the socket path and the
		// connections: hand it what changed since the copy, and leave
		// both in place.
		h.Conns.Close()
		if c != nil {
			if _, err := c.FinishCopy(h.Final); err != nil {
				fmt.Fprintf(os.Stderr, "Warning, the last sessions did not reach the new process: %v\n", err)
			}
		}
		h.Final.Close()
		os.Exit(0)
	default:
	}
	if c != nil && cfg.snapshot != "" {
		if err := saveSnapshot(cfg.snapshot, c, cfg.secure.Keys()); err != nil {
			fmt.Fprintf(os.Stderr, "Error, -snapshot: cannot write %s: %v\n", cfg.snapshot, err)
		} else {
			fmt.Fprintf(os.Stderr, "Info, -snapshot: %d sessions written to %s\n", c.NumItems(time.Now()), cfg.snapshot)
		}
	}

	ln.RemoveSocket()
	cfg.daemon.RemovePIDFile()
	os.Exit(0)
}

// upgradeTimeout is how long a successor may take to be ready with n
// sessions to read: 30 seconds, plus 20 µs a session (BenchmarkHandover
// measures under 3 µs on a loaded machine), so 1 M sessions have 50 s.
func upgradeTimeout(n int) time.Duration {
	return 30*time.Second + time.Duration(n)*20*time.Microsecond
}

// handoverFiles are the descriptors a successor inherits, in the order
// Listen, sessiondSocket and Metrics.Start expect: the listener, the
// sessiond socket, the metrics listener.
func handoverFiles(ln *tool.Listener, sd *net.UDPConn, m *tool.Metrics) ([]*os.File, error) {
	var files []*os.File
	add := func(f *os.File, err error) error {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return err
		}
		if f != nil {
			files = append(files, f)
		}
		return nil
	}
	if err := add(ln.File()); err != nil {
		return nil, err
	}
	if sd != nil {
		if err := add(sd.File()); err != nil {
			return nil, err
		}
	}
	if err := add(m.File()); err != nil {
		return nil, err
	}
	return files, nil
}

// sessiondSocket opens the UDP socket of -sessiond. It is created before
// daemonising; a daemon child inherits it as descriptor 1 after the
// listener. When the parent is about to detach, f is the socket's
// descriptor to hand over.
func sessiondSocket(cfg *config) (conn *net.UDPConn, f *os.File, err error) {
	if cfg.sessiond == "" {
		return nil, nil, nil
	}
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
	return conn, f, nil
}
