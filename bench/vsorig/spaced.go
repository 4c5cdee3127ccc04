// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// The spaced cases are Apache's pace rather than dc_test's: one GET at a
// time with an idle gap before each (a resumed handshake makes one cache
// lookup, and one openssl s_time client makes one handshake at a time),
// so every request finds the daemons idle and wakes them. The load is
// ours (dc_test has no gap), the same for both implementations: one
// thread, blocking system calls, a nanosleep for the gap, pinned with the
// daemons when they are.

// spacedCases makes the spaced cases for each gap: straight to dc_server
// over unix and through dc_client (unix to it, TCP to its server), on one
// connection kept open ("kept conn") and on a connection per operation;
// and through dc_client, a connection per operation, a session another
// host added (ADDed straight to dc_server): a farm's usual resumption,
// on a host the load balancer did not send the first handshake to.
// Their names avoid "persistent" and "connection" so that -only picks
// either kind alone.
func spacedCases(gaps []time.Duration) []bcase {
	var cs []bcase
	for _, g := range gaps {
		// About 2-3 s a round: enough GETs for a p99 at either gap.
		ops := int(2500 * time.Millisecond / (g + 100*time.Microsecond))
		name := "spaced " + gapName(g) + ", "
		cs = append(cs,
			bcase{name: name + "unix, kept conn", ops: ops, clients: 1, gap: g},
			bcase{name: name + "unix, conn per op", ops: ops, clients: 1, gap: g, perConn: true},
			bcase{name: name + "via dc_client, kept conn", ops: ops, clients: 1, tcp: true, viaProxy: true, gap: g},
			bcase{name: name + "via dc_client, conn per op", ops: ops, clients: 1, tcp: true, viaProxy: true, gap: g, perConn: true},
			bcase{name: name + "via dc_client, another host's session", ops: ops, clients: 1, tcp: true, viaProxy: true, gap: g, perConn: true, elsewhere: true},
		)
	}
	return cs
}

// gapName is a gap as a case name shows it: 500us, 2ms.
func gapName(g time.Duration) string {
	if g%time.Millisecond == 0 {
		return strconv.Itoa(int(g/time.Millisecond)) + "ms"
	}
	return strconv.Itoa(int(g/time.Microsecond)) + "us"
}

// parseGaps reads -gaps: durations separated by commas.
func parseGaps(s string) ([]time.Duration, error) {
	var gs []time.Duration
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		g, err := time.ParseDuration(f)
		if err != nil || g <= 0 || g > time.Second {
			return nil, fmt.Errorf("-gaps: %q is not a duration between 0 and 1s", f)
		}
		gs = append(gs, g)
	}
	return gs, nil
}

// spacedData is the session the spaced load reads: about the size of a
// TLS 1.2 session Apache stores; each load stores it under an id of its
// own (spacedRuns).
var (
	spacedData = bytes.Repeat([]byte{0x73}, 200)
	spacedRuns atomic.Int64
)

// spacedLoad stores the session at addTo, then GETs it at target c.ops times, one
// every c.gap, from one thread (pinned to CPU 0 when pin is set), and
// returns each GET's round trip: from before the connect (per operation)
// or the write to the end of the answer. It calls begin when the
// measured GETs begin, after the ADD and a few GETs to warm up.
func spacedLoad(target, addTo string, c bcase, pin bool, begin func()) ([]time.Duration, error) {
	type out struct {
		lat []time.Duration
		err error
	}
	ch := make(chan out, 1)
	go func() {
		// The thread stays locked: it ends with the goroutine, and its
		// affinity with it.
		runtime.LockOSThread()
		if pin {
			var set unix.CPUSet
			set.Set(0)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				ch <- out{err: fmt.Errorf("sched_setaffinity: %v", err)}
				return
			}
		}
		lat, err := spacedRun(target, addTo, c, begin)
		ch <- out{lat, err}
	}()
	o := <-ch
	return o.lat, o.err
}

func spacedRun(target, addTo string, c bcase, begin func()) ([]time.Duration, error) {
	id := []byte(fmt.Sprintf("vsorig-spaced-%d-%d", os.Getpid(), spacedRuns.Add(1)))
	add, _ := proto.AppendMessage(nil, &proto.Message{UID: 1, Op: proto.OpAdd,
		Payload: proto.AppendAddRequest(nil, 600000, id, spacedData)})
	get, _ := proto.AppendMessage(nil, &proto.Message{UID: 2, Op: proto.OpGet, Payload: id})
	var cn *blockingConn
	defer func() {
		if cn != nil {
			cn.close()
		}
	}()
	var err error
	if cn, err = dialBlocking(addTo); err != nil {
		return nil, err
	}
	if p, err := cn.roundTrip(add); err != nil {
		return nil, fmt.Errorf("ADD: %v", err)
	} else if len(p) != 1 || p[0] != proto.ResultOK {
		return nil, fmt.Errorf("ADD answered % x", p)
	}
	if addTo != target {
		cn.close()
		if cn, err = dialBlocking(target); err != nil {
			return nil, err
		}
	}
	lat := make([]time.Duration, 0, c.ops)
	gap := unix.NsecToTimespec(int64(c.gap))
	const warm = 20 // not measured: the connection, the daemons' first use
	for i := 0; i < c.ops+warm; i++ {
		if i == warm {
			begin()
		}
		unix.Nanosleep(&gap, nil)
		t0 := time.Now()
		if c.perConn {
			cn.close()
			if cn, err = dialBlocking(target); err != nil {
				return nil, err
			}
		}
		p, err := cn.roundTrip(get)
		el := time.Since(t0)
		if err != nil {
			return nil, fmt.Errorf("GET %d: %v", i, err)
		}
		if !bytes.Equal(p, spacedData) {
			return nil, fmt.Errorf("GET %d answered %d bytes, not the session's %d", i, len(p), len(spacedData))
		}
		if i >= warm {
			lat = append(lat, el)
		}
	}
	return lat, nil
}

// blockingConn is a blocking socket read and written with plain system
// calls: a C client's transport, without the runtime's poller.
type blockingConn struct {
	fd int
	rd *proto.Reader
}

func (b *blockingConn) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(b.fd, p)
		if err == syscall.EINTR {
			continue
		}
		if n == 0 && err == nil {
			return 0, os.ErrClosed
		}
		return max(n, 0), err
	}
}

func (b *blockingConn) roundTrip(msg []byte) ([]byte, error) {
	for w := msg; len(w) > 0; {
		n, err := syscall.Write(b.fd, w)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		w = w[n:]
	}
	m, err := b.rd.ReadMessage()
	if err != nil {
		return nil, err
	}
	return m.Payload, nil
}

func (b *blockingConn) close() { syscall.Close(b.fd) }

// dialBlocking connects to a UNIX: or IP: address.
func dialBlocking(addr string) (*blockingConn, error) {
	var sa syscall.Sockaddr
	family := syscall.AF_UNIX
	switch {
	case strings.HasPrefix(addr, "UNIX:"):
		sa = &syscall.SockaddrUnix{Name: strings.TrimPrefix(addr, "UNIX:")}
	case strings.HasPrefix(addr, "IP:"):
		a := strings.TrimPrefix(addr, "IP:")
		i := strings.LastIndexByte(a, ':')
		port, err := strconv.Atoi(a[i+1:])
		if i < 0 || err != nil {
			return nil, fmt.Errorf("address %q", addr)
		}
		in := &syscall.SockaddrInet4{Port: port}
		copy(in.Addr[:], []byte{127, 0, 0, 1})
		sa, family = in, syscall.AF_INET
	default:
		return nil, fmt.Errorf("address %q", addr)
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Connect(fd, sa)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("connect %s: %v", addr, err)
	}
	b := &blockingConn{fd: fd}
	b.rd = proto.NewReader(b, proto.WantResponses)
	return b, nil
}

// taskStats is the run time and the time slices of each thread of a
// process (/proc/PID/task/TID/schedstat), by thread id.
type taskStats map[string][2]int64

func schedStats(pid int) taskStats {
	ts := taskStats{}
	dirs, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 3 {
			continue
		}
		ns, _ := strconv.ParseInt(f[0], 10, 64)
		n, _ := strconv.ParseInt(f[2], 10, 64)
		ts[filepath.Base(filepath.Dir(d))] = [2]int64{ns, n}
	}
	return ts
}

// since is the run time and the slices of the threads of now since then:
// a thread that ended in between is not counted (its figures are gone
// from the sum of the others, which a plain difference of sums would
// have made negative), one that began is counted whole.
func (now taskStats) since(then taskStats) (run time.Duration, slices int64) {
	for tid, v := range now {
		w := then[tid]
		run += time.Duration(v[0] - w[0])
		slices += v[1] - w[1]
	}
	return run, slices
}

// percentile is the p-th percentile (0-100) of ds, which it sorts.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(float64(len(ds)-1)*p/100 + 0.5)
	return ds[i]
}

// measureSpaced runs the spaced load against the daemons started
// (proxy nil when straight to the server) and reads their CPU time and
// wake-ups over it.
// server is dc_server's address, where a session of another host is
// added.
func measureSpaced(target, server string, c bcase, pin bool, srv, proxy *exec.Cmd) (result, error) {
	// the server's and the proxy's run time and wake-ups
	stat := func() (sv, pv taskStats) {
		sv = schedStats(srv.Process.Pid)
		if proxy != nil {
			pv = schedStats(proxy.Process.Pid)
		}
		return sv, pv
	}
	var s0, p0 taskStats
	var t0 time.Time
	addTo := target
	if c.elsewhere {
		addTo = server
	}
	lat, err := spacedLoad(target, addTo, c, pin, func() { s0, p0 = stat(); t0 = time.Now() })
	el := time.Since(t0)
	s1, p1 := stat()
	if err != nil {
		return result{}, err
	}
	ops := len(lat)
	sr, sn := s1.since(s0)
	pr, pn := p1.since(p0)
	res := result{opsPerSec: float64(ops) / el.Seconds(), cpuPerOp: (sr + pr) / time.Duration(ops),
		wakePerOp: float64(sn+pn) / float64(ops),
		proxyCPU:  pr / time.Duration(ops), proxyWake: float64(pn) / float64(ops)}
	res.p50, res.p99 = percentile(lat, 50), percentile(lat, 99)
	return res, nil
}
