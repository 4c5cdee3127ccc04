// SPDX-License-Identifier: Apache-2.0

// Command dc_client is the local distcache proxy: applications connect to
// it on a local (normally unix) socket, and it forwards their requests over
// one persistent connection to a dc_server, rewriting request uids and
// mapping the responses back (see dc_client(8)).
//
// When the server is unreachable every request is answered at once with an
// empty response, and the connection is retried every -retry milliseconds;
// requests in flight when the server connection dies get DC_ERR_DISCONNECTED
// (0x02). A local client that goes away mid-request only loses its answer.
//
// With a Redis address as -server (redis://, rediss://, redis-sentinel://,
// redis-cluster://) it serves its local clients straight from Redis
// (goimpl/redisstore), with no dc_server in the path; a request Redis does
// not answer within -redistimeout is answered as a miss or a failed add.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/redisflag"
	"github.com/distcache-go/distcache/cmd/internal/tool"
	"github.com/distcache-go/distcache/goimpl/metrics"
	"github.com/distcache-go/distcache/goimpl/nearmap"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/proxy"
	"github.com/distcache-go/distcache/goimpl/redisstore"
	"github.com/distcache-go/distcache/goimpl/seal"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/upstream"
)

const usage = `Usage: dc_client -server <addr> [options]
where options include:
   -listen <addr>        the local address to listen on (default, as root,
                         UNIX:/run/distcache/dc_client.sock; for other
                         users in $XDG_RUNTIME_DIR/distcache or
                         /tmp/distcache-<uid>)
   -server <addr>        the cache server to connect to (required): a
                         distcache address, or a Redis address (below);
                         distcache servers may be given more than once, in
                         order of preference: requests go to the first one
                         that answers
   -connect <addr>       same as -server
   -retry <msecs>        reconnect interval after losing the server (default 5000)
   -idle <msecs>         drop local clients idle this long (default 0 = never)
   -maxclients <num>     maximum local client connections (default 1024)
   -reqtimeout <msecs>   how long a request waits for the server's answer
                         (default 100, raised up to 20 times when answers
                         are slow); after a timeout the server is not used
                         until it answers a probe, and requests are
                         answered at once meanwhile (0 = wait for ever, as
                         the original did)
   -inflight <num>       maximum requests in flight to the server (default 512;
                         1 for an original distcache 1.5 dc_server, which
                         drops pipelined requests behind large answers)
   -metrics <addr>       serve Prometheus metrics at /metrics and a live status
                         page at / on this address (IP:127.0.0.1:9101; off by
                         default); SIGWINCH then prints the counters to the log
   -metricspublic        allow -metrics on an address that is not loopback
   -tlsca <file>         speak TLS to the server and verify its certificate
                         against these CA certificates (PEM; default: the
                         system's roots when another -tls option is given)
   -tlsname <name>       name the server's certificate must carry (default:
                         the host of -server)
   -tlscert <file>       client certificate chain (PEM), for a server that
                         requires one (with -tlskey)
   -tlskey <file>        private key of -tlscert (refused if any user may
                         read it)
   -tls12                also accept TLS 1.2 (default: TLS 1.3 only)
   -sealkey <file>       seal session data before it leaves this host, with
                         the keys in <file>: "<id> <64 hex digits>" a line,
                         the first seals, all open; refused if group or
                         others may read it (SIGHUP reloads it and the TLS
                         files)
   -near <num>           sessions kept in the near cache, which answers GETs
                         of the sessions this dc_client added or read
                         without the server, kept exact by the server's
                         removal notices
                         (default 10000, and 4 KiB of data each on average;
                         0 = off; only with a dc_server
                         that announces them, never with Redis)
   -nearmap              share the near cache with the local clients in
                         memory: a client of the C library on the unix
                         -listen socket reads the sessions it holds
                         without asking dc_client (any process that may
                         connect to the socket can read every one)
   -minlifetime <secs>   with a Redis -server: lifetime given to sessions added
                         with a timeout under 1000 ms, as dc_server does
                         (httpd 2.4 sends only the milliseconds part of its
                         timeout; default 300, 0 = store as sent)
   -daemon               detach and run in the background
   -user <user>          run as this user (and its groups)
   -sockowner <user>     owner of the unix socket
   -sockgroup <group>    group of the unix socket (then mode 0660)
   -sockperms <octal>    permissions of the unix socket (default 0600:
                         only this user can connect)
   -pidfile <path>       write the process id to this file
   -killable             exit cleanly on SIGUSR1 or SIGUSR2
   -version              print the version and exit
   -h, -help, -?         this help
` + redisflag.Usage

// defaultReqTimeout bounds what a stalled server costs a request (a TLS
// handshake waiting for its cache); goimpl/upstream raises the timeout
// with the latency it sees (up to 20 times), which keeps a loaded machine
// from taking its server for stalled: on this project's 2-core machine at
// a load average of 30 to 36, answers took up to 0.5 s, and a fixed
// 100 ms tripped 19 times in one Apache load test (see dc_client(8)).
const defaultReqTimeout = 100 * time.Millisecond

// defaultNear is -near's default: at a few hundred bytes to a few KiB
// per TLS session, some megabytes; a web server's recent sessions (its
// resumptions come within minutes of the full handshakes).
const defaultNear = 10000

// defaultSocketName is the default socket's name in
// tool.DefaultSocketDir, a directory only the service can write.
const defaultSocketName = "dc_client.sock"

type config struct {
	listen     string
	servers    []string
	retry      time.Duration
	idle       time.Duration
	maxClients int64
	inflight   int64
	reqTimeout time.Duration
	daemon     tool.Daemon
	metrics    tool.Metrics
	secure     tool.Secure
	redis      redisflag.Config
	minLife    int64
	near       int64
	nearMap    bool
}

func parseArgs() (*config, *tool.Args) {
	c := &config{retry: 5 * time.Second, maxClients: 1024, inflight: 512, reqTimeout: defaultReqTimeout, minLife: 300, near: defaultNear}
	c.secure.Client = true
	a := tool.NewArgs(os.Args[1:], usage)
	for a.Next() {
		if c.daemon.Option(a) || c.metrics.Option(a) || c.secure.Option(a) || c.redis.Option(a) {
			continue
		}
		switch a.Opt() {
		case "-listen":
			c.listen = a.AddrValue()
		case "-server", "-connect":
			c.servers = append(c.servers, a.AddrValue())
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
		case "-near":
			c.near = a.Int(0, 10000000)
		case "-nearmap":
			c.nearMap = true
		case "-minlifetime":
			c.minLife = a.Int(0, proto.MaxExpiry/1000)
		default:
			a.Unknown()
		}
	}
	if len(c.servers) == 0 {
		a.Fail("Error, no server specified!")
	}
	if c.nearMap && (c.near == 0 || redisstore.IsAddr(c.servers[0])) {
		a.Fail("Error, -nearmap shares the near cache: it needs -near above 0 and a distcache server")
	}
	return c, a
}

func main() {
	cfg, args := parseArgs()
	// Catch signals first: one sent while starting up is acted on once
	// the server runs, instead of killing it half-initialised.
	sigs := cfg.daemon.Signals()
	cfg.daemon.Check()
	useRedis := redisstore.IsAddr(cfg.servers[0])
	// Certificates and keys are read before the user switch.
	tc := cfg.secure.ClientTLS()
	var servers []upstream.Server
	if useRedis {
		if _, err := redisstore.ParseAddr(cfg.servers[0]); err != nil {
			tool.Die("Error, internal initialisation problems: -server '%s': %v", cfg.servers[0], err)
		}
		if len(cfg.servers) > 1 {
			tool.Die("Error, a Redis -server cannot be combined with other servers (Sentinel or Cluster give Redis its failover)")
		}
		if tc != nil {
			tool.Die("Error, the -tls options are for a distcache server; for Redis use rediss:// and -redistlsca, -redistlscert, -redistlskey")
		}
	}
	for _, s := range cfg.servers {
		if useRedis {
			break
		}
		a, err := tool.ParseAddr(s)
		if err == nil && !a.CanConnect() {
			err = errors.New("not an address one can connect to")
		} else if err == nil && redisstore.IsAddr(s) {
			err = errors.New("a Redis address cannot follow a distcache server")
		}
		if err != nil {
			tool.Die("Error, internal initialisation problems: -server '%s': %v", s, err)
		}
		dial := dialer(a)
		if tc != nil {
			if cfg.secure.TLS.Name == "" && a.Network == "unix" {
				tool.Die("Error, TLS to a unix socket needs -tlsname")
			}
			dial = tc.Dialer(a.Address, dial)
		}
		servers = append(servers, upstream.Server{Name: a.Str, Dial: dial})
	}
	cfg.secure.LoadSealKey()
	if cfg.listen == "" {
		dir := tool.DefaultSocketDir()
		if err := tool.PrepareSocketDir(dir); err != nil {
			tool.Die("Error, bad listen address (the default): %v", err)
		}
		cfg.listen = "UNIX:" + dir + "/" + defaultSocketName
	}
	ln, files, err := cfg.daemon.Listen(cfg.listen)
	if err != nil {
		tool.Die("Error, bad listen address '%s': %v", cfg.listen, err)
	}
	if cfg.nearMap && ln.Addr().Network() != "unix" {
		ln.RemoveSocket()
		tool.Die("Error, -nearmap hands the map over a unix socket: -listen '%s' is not one", cfg.listen)
	}
	cfg.metrics.Inherit = 1 // after the listener (Upgrader.Files below)
	reg := cfg.metrics.Start("dc_client", &cfg.daemon)
	// A successor started by the upgrade signal connects to its server
	// before it takes over (below); its predecessor sends it no state.
	handover, conns := tool.HandedOver(), tool.HandedConns()
	if handover != nil {
		go func() { io.Copy(io.Discard, handover); handover.Close() }()
	}

	log := new(tool.RateLog)
	// sealed wraps a store in -sealkey's sealing, counted in the metrics.
	sealed := func(st store.Store) store.Store {
		st = cfg.secure.Seal(st, log)
		if ss, ok := st.(*seal.Store); ok {
			reg.SealFailures(ss.Failures)
		}
		return st
	}
	var h *store.Handler
	var poll proxy.Pollable // the upstream: its answers read by the proxy's loop
	var nmap *nearmap.Map   // -nearmap's, on a unix socket
	var near *upstream.Near // the near cache that keeps nmap
	if useRedis {
		rs, err := cfg.redis.Open(cfg.servers[0], func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
		if err != nil {
			ln.RemoveSocket()
			tool.Die("Error, internal initialisation problems: %v", err)
		}
		// GETDEL takes atomically; a request Redis cannot serve in time
		// is a miss (or a failed add), so a handshake never waits.
		h = &store.Handler{Store: reg.WrapStore(sealed(reg.WrapBackend(rs)), metrics.Distcache), Unavailable: store.AnswerMiss,
			MinLifetime: time.Duration(cfg.minLife) * time.Second,
			Features:    func() uint32 { return proto.FeatureTake }}
	} else {
		up, err := upstream.New(upstream.Options{
			Servers:  servers,
			Inflight: int(cfg.inflight),
			Timeout:  cfg.reqTimeout,
			Retry:    cfg.retry,
			Log:      log,
			Metrics:  reg,
		})
		if err != nil {
			tool.Die("Error, internal initialisation problems: %v", err)
		}
		reg.UpstreamLevels(up.InFlight, up.Waiting)
		if handover != nil {
			waitConnected(up, 5*time.Second)
		} else {
			// Requests that come while the first connection is being
			// made wait for it in the listener's backlog instead of
			// finding no server (a server that is down fails at once; a
			// dial that hangs costs the start at most this).
			up.WaitTried(time.Second)
		}
		// The near cache is outside the sealing: it keeps opened data,
		// inside this host as the applications' data is.
		st := sealed(up)
		if cfg.near > 0 {
			n := upstream.NewNear(st, up, int(cfg.near))
			reg.Near(n.Stats)
			if cfg.nearMap {
				if nmap, err = nearmap.New(int(cfg.near)); err != nil {
					tool.Die("Error, internal initialisation problems: -nearmap: %v", err)
				}
				n.Share(nmap)
				near = n
			}
			st = n
		}
		h = &store.Handler{Store: reg.WrapStore(st, metrics.Distcache), Unavailable: upstream.Answer,
			// TAKE passes through; subscriptions are the server's and
			// this process's, never a local client's.
			Features: func() uint32 { return up.Features() & proto.FeatureTake }}
		poll = up
	}
	cfg.daemon.Start(args.Rewritten(), files)
	cfg.secure.ReloadOnHUP()
	p := proxy.New(proxy.Options{
		Handler:    h,
		MaxClients: int(cfg.maxClients),
		Idle:       cfg.idle,
		Log:        log,
		Metrics:    reg,
		Poll:       poll,
		NearMap:    nmap,
	})
	if conns != nil {
		// The local clients of the predecessor, each between two requests.
		tool.TakeConns(conns, nil, func(nc net.Conn, _, in []byte) { p.Adopt(nc, in) })
	}
	done := make(chan struct{})
	go func() {
		p.Serve(ln)
		close(done)
	}()
	handed := tool.Upgrader{Args: args.Rewritten(),
		Files: func() ([]*os.File, error) {
			f, err := ln.File()
			if err != nil {
				return nil, err
			}
			m, err := cfg.metrics.File()
			if err != nil {
				f.Close()
				return nil, err
			}
			if m == nil {
				return []*os.File{f}, nil
			}
			return []*os.File{f, m}, nil
		}}.OnSignal()
	var final *tool.Handed
	select {
	case <-sigs:
	case final = <-handed:
		if near != nil {
			// The clients' requests go to the successor from now on;
			// this map would not see their REMOVEs.
			near.StopSharing()
		}
		p.HandOver(final.Conns.Send, 500*time.Millisecond)
		cfg.metrics.Keep()
	case <-done:
		if !p.Closing() {
			fmt.Fprintln(os.Stderr, "Error, the listener failed; shutting down")
		}
	}
	// Let every client finish the request it is waiting for.
	p.Shutdown(ln, 5*time.Second)
	h.Store.Close()
	nmap.Close()
	cfg.metrics.Stop()
	if final != nil {
		// The successor has the listener, the socket path and the
		// clients.
		final.Conns.Close()
		final.Final.Close()
		os.Exit(0)
	}
	ln.RemoveSocket()
	cfg.daemon.RemovePIDFile()
	os.Exit(0)
}

// waitConnected waits, at most d, until up has a server: a successor takes
// over only once it can serve.
func waitConnected(up *upstream.Upstream, d time.Duration) {
	end := time.Now().Add(d)
	for !up.Connected() && time.Now().Before(end) {
		time.Sleep(10 * time.Millisecond)
	}
}

// dialer connects to a distcache address within the context's deadline.
func dialer(a tool.Addr) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		timeout := 5 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		return a.Dial(timeout)
	}
}
