// SPDX-License-Identifier: Apache-2.0

// Command bench drives our dc_server and memcached with the same load and
// prints, case by case, operations per second and latency percentiles of
// both and the ratio ours/memcached, in one run on one machine. Each case
// runs several short rounds, alternating the servers, and reports medians:
// the machines here are shared and noisy.
//
// The load models a TLS farm's session cache: small session objects (about
// 200 bytes and 2 KiB), mostly lookups of existing sessions with some new
// sessions stored, from 1 or 4 concurrent clients, over one persistent
// connection per client or a new connection per operation, over a unix
// socket and TCP loopback, with 1k or 1M items already cached.
//
//	go run ./bench -dcserver build/bin/dc_server            (make bench)
//
// memcached must be installed (Debian: apt-get install memcached).
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
)

var (
	dcServer  = flag.String("dcserver", "build/bin/dc_server", "our dc_server binary")
	memcached = flag.String("memcached", "memcached", "memcached binary")
	duration  = flag.Duration("duration", 300*time.Millisecond, "measuring time per round")
	rounds    = flag.Int("rounds", 3, "rounds per case and server, alternating servers; medians are reported")
	bigItems  = flag.Int("items", 1000000, "item count of the large cache")
	addPct    = flag.Int("addpct", 10, "percentage of operations that store a new session")
	only      = flag.String("only", "", "run only cases whose name contains this string")
)

// backend is one server under test, reachable over a unix socket and TCP.
type backend interface {
	name() string
	dial(network, addr string) (session, error)
}

// session is one client connection able to store and fetch a session.
type session interface {
	add(id, data []byte) error
	get(id []byte, want int) error
	close()
}

type server struct {
	be       backend
	unixPath string
	tcpAddr  string
	cmds     []*exec.Cmd
}

func (s *server) addr(network string) string {
	if network == "unix" {
		return s.unixPath
	}
	return s.tcpAddr
}

func main() {
	flag.Parse()
	dir, err := os.MkdirTemp("", "dcbench")
	check(err)
	defer os.RemoveAll(dir)

	var servers []*server
	for _, be := range []backend{dcBackend{}, mcBackend{}} {
		s, err := start(be, dir)
		check(err)
		defer s.stop()
		started = append(started, s)
		servers = append(servers, s)
	}

	fmt.Printf("%-40s %12s %9s %9s %12s %9s %9s %7s\n", "case", "ours op/s", "p50", "p99", "memc op/s", "p50", "p99", "ratio")
	var ratios []float64
	for _, items := range []int{1000, *bigItems} {
		for _, size := range []int{200, 2048} {
			// Each server gets its own key space for this (items, size)
			// pair, filled before measuring.
			keyspace := fmt.Sprintf("i%d-s%d-", items, size)
			for _, s := range servers {
				check(fill(s, keyspace, items, size))
			}
			for _, network := range []string{"unix", "tcp"} {
				for _, persistent := range []bool{true, false} {
					for _, clients := range []int{1, 4} {
						mode := "persistent"
						if !persistent {
							mode = "per-op"
						}
						name := fmt.Sprintf("%s/%dB/%s/%s/c%d", itemsName(items), size, network, mode, clients)
						if *only != "" && !strings.Contains(name, *only) {
							continue
						}
						// Alternate the servers round by round so that a burst of
						// load from elsewhere on the machine hits both alike.
						var all [2][]result
						for r := 0; r < *rounds; r++ {
							for i, s := range servers {
								all[i] = append(all[i], run(s, network, persistent, clients, keyspace, items, size))
							}
						}
						res := [2]result{median(all[0]), median(all[1])}
						ratio := res[0].opsPerSec / res[1].opsPerSec
						ratios = append(ratios, ratio)
						fmt.Printf("%-40s %12.0f %9s %9s %12.0f %9s %9s %7.2f%s\n", name,
							res[0].opsPerSec, us(res[0].p50), us(res[0].p99),
							res[1].opsPerSec, us(res[1].p50), us(res[1].p99), ratio, res[0].note+res[1].note)
					}
				}
			}
		}
	}
	sort.Float64s(ratios)
	if len(ratios) > 0 {
		fmt.Printf("\nratio ours/memcached over %d cases: min %.2f, median %.2f, max %.2f\n",
			len(ratios), ratios[0], ratios[len(ratios)/2], ratios[len(ratios)-1])
	}
}

func itemsName(n int) string {
	if n >= 1000000 && n%1000000 == 0 {
		return fmt.Sprintf("%dM", n/1000000)
	}
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

func us(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/1e3) }

// started lists the servers to stop when the harness exits early.
var started []*server

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		for _, s := range started {
			s.stop()
		}
		os.Exit(1)
	}
}

func start(be backend, dir string) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &server{be: be, unixPath: filepath.Join(dir, be.name()+".sock"), tcpAddr: fmt.Sprintf("127.0.0.1:%d", port)}
	// Both servers listen on one address per process, so each runs twice:
	// once on the unix socket, once on TCP, each filled with the same items.
	// Memory: room for the large cache at 2 KiB per item, with headroom.
	mem := (*bigItems*3000)/(1<<20) + 256
	for _, network := range []string{"unix", "tcp"} {
		var cmd *exec.Cmd
		switch be.(type) {
		case dcBackend:
			listen := "UNIX:" + s.unixPath
			if network == "tcp" {
				listen = "IP:" + s.tcpAddr
			}
			cmd = exec.Command(*dcServer, "-listen", listen,
				"-sessions", strconv.Itoa(2**bigItems+100000), "-maxbytes", strconv.Itoa(mem<<20))
		case mcBackend:
			where := []string{"-s", s.unixPath}
			if network == "tcp" {
				where = []string{"-p", strconv.Itoa(port), "-l", "127.0.0.1"}
			}
			cmd = exec.Command(*memcached, append(where, "-U", "0", "-m", strconv.Itoa(mem), "-c", "4096", "-t", "4", "-u", "root")...)
		}
		// dc_server logs its progress lines to stderr: keep them out of
		// the table.
		if _, ok := be.(mcBackend); ok {
			cmd.Stderr = os.Stderr
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("%s: %w", be.name(), err)
		}
		s.cmds = append(s.cmds, cmd)
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.Dial(network, s.addr(network))
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				s.stop()
				return nil, fmt.Errorf("%s did not start listening on %s: %v", be.name(), s.addr(network), err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return s, nil
}

func (s *server) stop() {
	for _, c := range s.cmds {
		c.Process.Kill()
		c.Wait()
	}
}

func sessionID(keyspace string, i int) []byte {
	// 32 bytes, like a TLS session id.
	id := make([]byte, 32)
	copy(id, keyspace)
	binary.BigEndian.PutUint64(id[24:], uint64(i))
	return id
}

func sessionData(size int, i int) []byte {
	d := make([]byte, size)
	binary.BigEndian.PutUint64(d, uint64(i))
	return d
}

// fill stores items sessions in the server behind each transport.
func fill(s *server, keyspace string, items, size int) error {
	for _, network := range []string{"unix", "tcp"} {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				c, err := s.be.dial(network, s.addr(network))
				if err != nil {
					errs <- err
					return
				}
				defer c.close()
				for i := w; i < items; i += 4 {
					if err := c.add(sessionID(keyspace, i), sessionData(size, i)); err != nil {
						errs <- fmt.Errorf("fill %s item %d: %w", s.be.name(), i, err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// newIDs hands out id ranges for the sessions a run adds, above the filled
// range: 2^24 ids per client and case, far past any fill.
var newIDs atomic.Int64

func init() { newIDs.Store(1 << 32) }

// median picks, field by field, the median of the rounds.
func median(rs []result) result {
	pick := func(less func(a, b result) bool) result {
		sorted := append([]result(nil), rs...)
		sort.Slice(sorted, func(i, j int) bool { return less(sorted[i], sorted[j]) })
		return sorted[len(sorted)/2]
	}
	m := pick(func(a, b result) bool { return a.opsPerSec < b.opsPerSec })
	m.p50 = pick(func(a, b result) bool { return a.p50 < b.p50 }).p50
	m.p99 = pick(func(a, b result) bool { return a.p99 < b.p99 }).p99
	for _, r := range rs {
		if r.note != "" {
			m.note = r.note
		}
	}
	return m
}

type result struct {
	opsPerSec float64
	p50, p99  time.Duration
	note      string
}

func run(s *server, network string, persistent bool, clients int, keyspace string, items, size int) result {
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(*duration)
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			local := make([]time.Duration, 0, 1<<16)
			var c session
			var err error
			// New sessions get ids no other case or client has used.
			next := int(newIDs.Add(1)) << 24
			for time.Now().Before(stop) {
				t0 := time.Now()
				if c == nil {
					if c, err = s.be.dial(network, s.addr(network)); err != nil {
						break
					}
				}
				if rng.Intn(100) < *addPct {
					err = c.add(sessionID(keyspace, next), sessionData(size, next))
					next++
				} else {
					i := rng.Intn(items)
					err = c.get(sessionID(keyspace, i), size)
				}
				if !persistent {
					c.close()
					c = nil
				}
				local = append(local, time.Since(t0))
				if err != nil {
					break
				}
			}
			if c != nil {
				c.close()
			}
			mu.Lock()
			lat = append(lat, local...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := result{}
	if firstErr != nil {
		r.note = fmt.Sprintf("  [%s: %v]", s.be.name(), firstErr)
	}
	if len(lat) == 0 {
		return r
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r.opsPerSec = float64(len(lat)) / elapsed.Seconds()
	r.p50 = lat[len(lat)/2]
	r.p99 = lat[len(lat)*99/100]
	return r
}

// dcBackend speaks the distcache protocol directly (what DC_CTX sends).
type dcBackend struct{}

func (dcBackend) name() string { return "dc_server" }

func (dcBackend) dial(network, addr string) (session, error) {
	c, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	return &dcSession{c: c, r: proto.NewReader(c, proto.WantResponses)}, nil
}

type dcSession struct {
	c   net.Conn
	r   *proto.Reader
	uid uint32
	buf []byte
}

func (s *dcSession) roundTrip(op proto.Op, payload []byte) ([]byte, error) {
	s.uid++
	var err error
	s.buf, err = proto.AppendMessage(s.buf[:0], &proto.Message{UID: s.uid, Op: op, Payload: payload})
	if err != nil {
		return nil, err
	}
	if _, err := s.c.Write(s.buf); err != nil {
		return nil, err
	}
	m, err := s.r.ReadMessage()
	if err != nil {
		return nil, err
	}
	if m.UID != s.uid || m.Op != op {
		return nil, errors.New("mismatched response")
	}
	return m.Payload, nil
}

func (s *dcSession) add(id, data []byte) error {
	p, err := s.roundTrip(proto.OpAdd, proto.AppendAddRequest(nil, 3600000, id, data))
	if err != nil {
		return err
	}
	if len(p) != 1 || p[0] != proto.ResultOK {
		return fmt.Errorf("add answered %x", p)
	}
	return nil
}

func (s *dcSession) get(id []byte, want int) error {
	p, err := s.roundTrip(proto.OpGet, id)
	if err != nil {
		return err
	}
	if len(p) != want {
		return fmt.Errorf("get returned %d bytes, want %d", len(p), want)
	}
	return nil
}

func (s *dcSession) close() { s.c.Close() }

// mcBackend speaks memcached's text protocol.
type mcBackend struct{}

func (mcBackend) name() string { return "memcached" }

func (mcBackend) dial(network, addr string) (session, error) {
	c, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	return &mcSession{c: c, r: bufio.NewReader(c)}, nil
}

type mcSession struct {
	c   net.Conn
	r   *bufio.Reader
	buf []byte
}

func (s *mcSession) add(id, data []byte) error {
	s.buf = append(s.buf[:0], "set "...)
	s.buf = appendHexKey(s.buf, id)
	s.buf = append(s.buf, " 0 3600 "...)
	s.buf = strconv.AppendInt(s.buf, int64(len(data)), 10)
	s.buf = append(s.buf, "\r\n"...)
	s.buf = append(s.buf, data...)
	s.buf = append(s.buf, "\r\n"...)
	if _, err := s.c.Write(s.buf); err != nil {
		return err
	}
	line, err := s.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if string(line) != "STORED\r\n" {
		return fmt.Errorf("set answered %q", line)
	}
	return nil
}

func (s *mcSession) get(id []byte, want int) error {
	s.buf = append(s.buf[:0], "get "...)
	s.buf = appendHexKey(s.buf, id)
	s.buf = append(s.buf, "\r\n"...)
	if _, err := s.c.Write(s.buf); err != nil {
		return err
	}
	line, err := s.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	f := strings.Fields(string(line))
	if len(f) != 4 || f[0] != "VALUE" {
		return fmt.Errorf("get answered %q", line)
	}
	n, _ := strconv.Atoi(f[3])
	if n != want {
		return fmt.Errorf("get returned %d bytes, want %d", n, want)
	}
	if _, err := io.CopyN(io.Discard, s.r, int64(n+2)); err != nil {
		return err
	}
	line, err = s.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if string(line) != "END\r\n" {
		return fmt.Errorf("get trailer %q", line)
	}
	return nil
}

func (s *mcSession) close() { s.c.Close() }

// appendHexKey renders a binary session id as a memcached key.
func appendHexKey(dst, id []byte) []byte {
	const digits = "0123456789abcdef"
	for _, b := range id {
		dst = append(dst, digits[b>>4], digits[b&15])
	}
	return dst
}
