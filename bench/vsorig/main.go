// SPDX-License-Identifier: Apache-2.0

// Command vsorig measures our dc_server and dc_client against a distcache
// 1.5 installation the user points it at, under the original's own load
// generator (its dc_test: a client this project did not write), in one
// run on one machine:
//
//	go run ./bench/vsorig -orig /opt/distcache -ours build/bin   (make bench ORIG=/opt/distcache)
//
// Nothing of the original is bundled, built or fetched here. Each case
// runs several rounds, alternating the implementations and which goes
// first, and reports medians of operations per second and of the server's
// (and proxy's) CPU time per operation, read from /proc, which a shared,
// noisy machine disturbs far less than wall time. Cases run unpinned and
// with every process pinned to CPU 0 (taskset), as CPU-bound paths compare
// best on one core.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
)

var (
	orig   = flag.String("orig", os.Getenv("ORIG"), "prefix of a distcache 1.5 installation (bin/dc_server, bin/dc_client, bin/dc_test)")
	ours   = flag.String("ours", "build/bin", "directory of our tools")
	rounds = flag.Int("rounds", 3, "rounds per case and implementation; medians are reported")
	scale  = flag.Float64("scale", 1, "multiplies every case's operation count")
	only   = flag.String("only", "", "run only cases whose name contains this string")
	pinned = flag.String("pin", "both", "unpinned, pinned or both")
	gaps   = flag.String("gaps", "500us,2ms", "the idle gaps before each request of the spaced cases (comma-separated durations)")
	near   = flag.Int("near", -1, "our dc_client's -near (0: no near cache, every request takes the hop to dc_server, as the original's does); -1: its default")
)

// A case is one load: the original dc_test's options, how many of it run
// at once, where it connects, and what is cached beforehand.
type bcase struct {
	name     string
	args     []string // dc_test options besides -connect
	ops      int      // -ops of each client
	clients  int
	tcp      bool // the client reaches the server (or dc_client its server) over TCP loopback
	viaProxy bool // through dc_client
	prefill  int  // sessions stored before measuring
	// ourLoad: the load is our dc_test (same options) against both
	// servers, where the original's client cannot finish a round
	ourLoad bool

	// The spaced cases (spaced.go): our own load, one GET at a time
	// with this idle gap before each, instead of dc_test.
	gap     time.Duration
	perConn bool // a connection per GET
	// elsewhere: the session is ADDed straight to dc_server (by another
	// host, as it were) and read through dc_client.
	elsewhere bool
}

var cases = []bcase{
	{name: "unix, persistent", args: []string{"-persistent"}, ops: 100000, clients: 1},
	{name: "unix, connection per op", ops: 20000, clients: 1},
	{name: "tcp, persistent", args: []string{"-persistent"}, ops: 100000, clients: 1, tcp: true},
	{name: "tcp, connection per op", ops: 20000, clients: 1, tcp: true},
	{name: "4 persistent clients, unix", args: []string{"-persistent"}, ops: 40000, clients: 4},
	{name: "multi-frame 3000-4096 B", args: []string{"-persistent", "-datamin", "3000", "-datamax", "4096"}, ops: 50000, clients: 1},
	// The original's client library takes some multi-frame answers for
	// another session, against either server (within 40 to 1 700
	// operations, most often on one CPU), so the row above rarely has a
	// round to measure: the same load from our dc_test.
	{name: "multi-frame 3000-4096 B, our dc_test", args: []string{"-persistent", "-datamin", "3000", "-datamax", "4096"}, ops: 50000, clients: 1, ourLoad: true},
	{name: "via dc_client, persistent", args: []string{"-persistent"}, ops: 50000, clients: 1, tcp: true, viaProxy: true},
	{name: "via dc_client, connection per op", ops: 20000, clients: 1, tcp: true, viaProxy: true},
	{name: "via dc_client, 4 clients", args: []string{"-persistent"}, ops: 25000, clients: 4, tcp: true, viaProxy: true},
	{name: "20000 sessions cached", args: []string{"-persistent"}, ops: 50000, clients: 1, prefill: 20000},
}

// ourLoad is our dc_test, the load of the cases with ourLoad.
var ourLoad string

// impl is one implementation's tools.
type impl struct {
	name                 string
	server, proxy, dtest string
	proxyArgs            []string // dc_client options besides -listen and -server
}

// oursProxyArgs are the options our dc_client runs with here: a request
// waits for dc_server's answer up to 10 s (-reqtimeout; the default is
// 100 ms, raised only once answers have been slow), as the original's
// waits without end. On a loaded machine an answer late by more than the
// default was answered by the proxy as a miss (a 1-byte GET answer),
// which ended a spaced round; 10 s still ends a round whose server has
// stalled.
var oursProxyArgs = []string{"-reqtimeout", "10000"}

// proxyCommand is the command line of im's dc_client, listening at listen
// and forwarding to server.
func proxyCommand(im impl, listen, server string) []string {
	return append([]string{im.proxy, "-listen", listen, "-server", server}, im.proxyArgs...)
}

type result struct {
	opsPerSec float64
	cpuPerOp  time.Duration // server + proxy CPU time per operation

	// The spaced cases only.
	p50, p99  time.Duration // round trips
	wakePerOp float64       // times a daemon thread was put on a CPU, per operation
	// dc_client's own share of cpuPerOp and wakePerOp (through dc_client)
	proxyCPU  time.Duration
	proxyWake float64
}

func main() {
	flag.Parse()
	if *orig == "" {
		fmt.Fprintln(os.Stderr, "vsorig: give -orig PREFIX (or ORIG=PREFIX): a distcache 1.5 installation to compare with")
		os.Exit(2)
	}
	o := impl{"orig", filepath.Join(*orig, "bin/dc_server"), filepath.Join(*orig, "bin/dc_client"), filepath.Join(*orig, "bin/dc_test"), nil}
	u := impl{"ours", filepath.Join(*ours, "dc_server"), filepath.Join(*ours, "dc_client"), "", oursProxyArgs}
	if *near >= 0 {
		u.proxyArgs = append(slices.Clip(u.proxyArgs), "-near", strconv.Itoa(*near))
	}
	ourLoad = filepath.Join(*ours, "dc_test")
	u.dtest = o.dtest // the original's load for both
	for _, p := range []string{o.server, o.proxy, o.dtest, u.server, u.proxy, ourLoad} {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintln(os.Stderr, "vsorig:", err)
			os.Exit(1)
		}
	}
	gs, err := parseGaps(*gaps)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vsorig:", err)
		flag.Usage()
		os.Exit(2)
	}
	all := append(append([]bcase(nil), cases...), spacedCases(gs)...)
	dir, err := os.MkdirTemp("", "vsorig")
	check(err)
	defer os.RemoveAll(dir)
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("load average at start: %s", load)
	headed, spacedHeaded := false, false
	modes := map[string][]bool{"unpinned": {false}, "pinned": {true}, "both": {false, true}}[*pinned]
	var opsRatios, cpuRatios, spacedCPU, spacedP50 []float64
	var failed []failure
	var notes []string // where the original dc_test's own check failed
	oursChecked := false
	for _, c := range all {
		if *only != "" && !strings.Contains(c.name, *only) {
			continue
		}
		c.ops = max(int(float64(c.ops)**scale), 1)
		switch {
		case c.gap == 0 && !headed:
			headed = true
			fmt.Printf("%-36s %-8s %11s %11s %6s %10s %10s %6s\n", "case", "pin", "ours op/s", "orig op/s", "ratio", "ours CPU/op", "orig CPU/op", "ratio")
		case c.gap > 0 && !spacedHeaded:
			spacedHeaded = true
			fmt.Printf("\none GET at a time after an idle gap (our load); CPU/op and wk (wake-ups per op): server + proxy; p50/p99: round trip;\n" +
				"dcc: dc_client's own CPU/op and wake-ups per op (through dc_client)\n")
			fmt.Printf("%-40s %-8s %10s %10s %6s %9s %9s %6s %9s %9s %6s %7s %7s %9s %9s %6s %7s %7s\n", "case", "pin",
				"ours CPU/op", "orig CPU/op", "ratio", "ours p50", "orig p50", "ratio", "ours p99", "orig p99", "ratio", "ours wk", "orig wk",
				"ours dcc", "orig dcc", "ratio", "dcc wk", "orig")
		}
		for _, pin := range modes {
			var rs [2][]result
			var errs [2]error
			var checks [2]clientChecks
			for r := 0; r < *rounds && errs[0] == nil && errs[1] == nil; r++ {
				order := []int{0, 1}
				if r%2 == 1 {
					order = []int{1, 0}
				}
				for _, i := range order {
					res, err := runRound(dir, []impl{u, o}[i], c, pin, &checks[i])
					if err != nil {
						errs[i] = err
						continue
					}
					rs[i] = append(rs[i], res)
				}
			}
			pinName := "unpinned"
			if pin {
				pinName = "cpu0"
			}
			if checks[0].any() || checks[1].any() {
				notes = append(notes, fmt.Sprintf("%s, %s: %s", c.name, pinName, checkNote(checks)))
				oursChecked = oursChecked || checks[0].any()
			}
			if errs[0] != nil || errs[1] != nil {
				failed = append(failed, caseFailure(c.name+", "+pinName, errs))
				fmt.Printf("%-36s %-8s failed (below)\n", c.name, pinName)
				continue
			}
			us, or := median(rs[0]), median(rs[1])
			opsR := us.opsPerSec / or.opsPerSec
			cpuR := float64(us.cpuPerOp) / float64(or.cpuPerOp)
			if c.gap > 0 {
				spacedCPU = append(spacedCPU, cpuR)
				spacedP50 = append(spacedP50, float64(us.p50)/float64(or.p50))
				fmt.Printf("%-40s %-8s %10s %10s %6.2f %9s %9s %6.2f %9s %9s %6.2f %7.1f %7.1f%s\n", c.name, pinName,
					us.cpuPerOp.Round(100*time.Nanosecond), or.cpuPerOp.Round(100*time.Nanosecond), cpuR,
					us.p50.Round(time.Microsecond), or.p50.Round(time.Microsecond), float64(us.p50)/float64(or.p50),
					us.p99.Round(time.Microsecond), or.p99.Round(time.Microsecond), float64(us.p99)/float64(or.p99),
					us.wakePerOp, or.wakePerOp, proxyColumns(c, us, or))
				continue
			}
			opsRatios, cpuRatios = append(opsRatios, opsR), append(cpuRatios, cpuR)
			fmt.Printf("%-36s %-8s %11.0f %11.0f %6.2f %10s %10s %6.2f\n", c.name, pinName,
				us.opsPerSec, or.opsPerSec, opsR, us.cpuPerOp.Round(100*time.Nanosecond), or.cpuPerOp.Round(100*time.Nanosecond), cpuR)
		}
	}
	load, _ = os.ReadFile("/proc/loadavg")
	fmt.Printf("load average at end: %s", load)
	if headed {
		fmt.Printf("throughput ours/orig: %s; server CPU per op ours/orig: %s\n", summary(opsRatios), summary(cpuRatios))
	}
	if spacedHeaded {
		fmt.Printf("spaced: CPU per op ours/orig: %s; median round trip ours/orig: %s\n", summary(spacedCPU), summary(spacedP50))
	}
	if len(notes) > 0 {
		fmt.Printf("\nThe original dc_test's own check failed (%q) in these cases: a round so\n"+
			"ended counts the operations done before it if there were at least %d of one\n"+
			"client, and is run again otherwise (%d tries a round at most):\n", mismatch, minPartial, maxTries)
		for _, n := range notes {
			fmt.Println("  " + n)
		}
	}
	if oursChecked {
		fmt.Println("vsorig: WARNING: the original dc_test's check failed against OUR dc_server too (counted above;\n" +
			"it fails against the original's as well, but a failure against ours is not proof of the client's fault)")
	}
	oursOnly := false
	for _, f := range failed {
		fmt.Printf("\n%s:\n%s", f.name, f.text)
		oursOnly = oursOnly || f.oursOnly
	}
	if oursOnly {
		// The original dc_test's failures are intermittent, so one round
		// is no verdict: the tests decide correctness, this says where to look.
		fmt.Println("\nvsorig: WARNING: a load failed against our daemons and passed against the original's in the same round")
	}
}

// failure is a case whose load failed against one or both
// implementations (after runRound's tries); a failure against ours alone
// is flagged.
type failure struct {
	name     string
	text     string
	oursOnly bool
}

func caseFailure(name string, errs [2]error) failure {
	f := failure{name: name, oursOnly: errs[0] != nil && errs[1] == nil}
	for i, who := range []string{"ours", "orig"} {
		if errs[i] != nil {
			f.text += fmt.Sprintf("  %s: %v\n", who, errs[i])
		}
	}
	if errs[0] != nil && errs[1] != nil {
		f.text += "  (the load generator fails against both servers)\n"
	}
	return f
}

func summary(v []float64) string {
	if len(v) == 0 {
		return "no cases"
	}
	sort.Float64s(v)
	return fmt.Sprintf("min %.2f, median %.2f, max %.2f over %d cases", v[0], v[len(v)/2], v[len(v)-1], len(v))
}

// proxyColumns are a spaced row's dc_client columns: its CPU per op for
// both, their ratio, and its wake-ups per op for both (none straight to
// dc_server).
func proxyColumns(c bcase, us, or result) string {
	if !c.viaProxy {
		return ""
	}
	return fmt.Sprintf(" %9s %9s %6.2f %7.1f %7.1f", us.proxyCPU.Round(100*time.Nanosecond), or.proxyCPU.Round(100*time.Nanosecond),
		float64(us.proxyCPU)/float64(or.proxyCPU), us.proxyWake, or.proxyWake)
}

// median is the median of each figure, each on its own.
func median(rs []result) result {
	var ops, cpu, p50, p99, wake, pcpu, pwake []float64
	for _, r := range rs {
		ops, cpu = append(ops, r.opsPerSec), append(cpu, float64(r.cpuPerOp))
		p50, p99, wake = append(p50, float64(r.p50)), append(p99, float64(r.p99)), append(wake, r.wakePerOp)
		pcpu, pwake = append(pcpu, float64(r.proxyCPU)), append(pwake, r.proxyWake)
	}
	mid := func(v []float64) float64 {
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return result{opsPerSec: mid(ops), cpuPerOp: time.Duration(mid(cpu)),
		p50: time.Duration(mid(p50)), p99: time.Duration(mid(p99)), wakePerOp: mid(wake),
		proxyCPU: time.Duration(mid(pcpu)), proxyWake: mid(pwake)}
}

// command runs argv, pinned to CPU 0 when pin is set.
func command(pin bool, argv ...string) *exec.Cmd {
	if pin {
		argv = append([]string{"taskset", "-c", "0"}, argv...)
	}
	return exec.Command(argv[0], argv[1:]...)
}

// runCase starts im's server (and proxy), runs the load, and returns its
// throughput and the daemons' CPU time per operation.
// A round that dc_test's own check ended after enough operations is
// measured over those and reported in partial.
func runCase(dir string, im impl, c bcase, pin bool, partial *bool) (result, error) {
	sock := filepath.Join(dir, im.name+".sock")
	proxySock := filepath.Join(dir, im.name+"-proxy.sock")
	os.Remove(sock)
	os.Remove(proxySock)
	listen := "UNIX:" + sock
	if c.tcp {
		port, err := freePort()
		if err != nil {
			return result{}, err
		}
		listen = "IP:127.0.0.1:" + strconv.Itoa(port)
	}
	var daemons []*exec.Cmd
	defer func() {
		for _, d := range daemons {
			d.Process.Kill()
			d.Wait()
		}
	}()
	var srvErr bytes.Buffer
	start := func(stderr io.Writer, argv ...string) (*exec.Cmd, error) {
		cmd := command(pin, argv...)
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		daemons = append(daemons, cmd)
		return cmd, nil
	}
	srv, err := start(&srvErr, im.server, "-listen", listen, "-sessions", "60000") // the original's largest cache
	if err != nil {
		return result{}, err
	}
	if err := waitListening(listen); err != nil {
		return result{}, fmt.Errorf("%s dc_server: %v\n%s", im.name, err, srvErr.String())
	}
	target := listen
	var proxy *exec.Cmd
	if c.viaProxy {
		// Our dc_client's near cache keeps only what is added while it
		// is subscribed: the load starts once it is, so that what the
		// near cache answers does not depend on how fast it subscribed.
		var near *lineWatch
		var stderr io.Writer
		if im.name == "ours" && !slices.Contains(im.proxyArgs, "-near") {
			near = newLineWatch(nearOn)
			stderr = near
		}
		if proxy, err = start(stderr, proxyCommand(im, "UNIX:"+proxySock, listen)...); err != nil {
			return result{}, err
		}
		target = "UNIX:" + proxySock
		if err := waitListening(target); err != nil {
			return result{}, fmt.Errorf("%s dc_client: %v", im.name, err)
		}
		if near != nil {
			if err := near.wait(10 * time.Second); err != nil {
				return result{}, fmt.Errorf("%s dc_client: %v", im.name, err)
			}
		}
	}
	if c.prefill > 0 {
		if err := prefill(target, c.prefill); err != nil {
			return result{}, fmt.Errorf("prefill: %v", err)
		}
	}
	if c.gap > 0 {
		return measureSpaced(target, listen, c, pin, srv, proxy)
	}
	cpu0 := cpuTime(srv) + cpuTime(proxy)
	t0 := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	var firstErr error
	for i := 0; i < c.clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			load := im.dtest
			if c.ourLoad {
				load = ourLoad
			}
			argv := append([]string{load, "-connect", target, "-ops", strconv.Itoa(c.ops)}, c.args...)
			out, killed, err := runLoad(command(pin, argv...), loadTimeout)
			done := c.ops
			if err != nil {
				done = -1
				ce := &clientCheckError{err: fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, lastLines(out))}
				if bytes.Contains(out, []byte(mismatch)) {
					ce.check, ce.done = true, succeededBefore(out)
				}
				if killed {
					ce.err = fmt.Errorf("%s: killed after %v without finishing\n%s", strings.Join(argv, " "), loadTimeout, lastLines(out))
					ce.check = true // run again, as for its own check
				}
				err = ce
				if ce.check && c.clients == 1 && ce.done >= minPartial {
					done, err = ce.done, nil // measured over what it did
					*partial = true
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			total += max(done, 0)
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	cpu := cpuTime(srv) + cpuTime(proxy) - cpu0
	if firstErr != nil {
		return result{}, firstErr
	}
	return result{opsPerSec: float64(total) / el.Seconds(), cpuPerOp: cpu / time.Duration(total)}, nil
}

// runLoad runs cmd, its output combined, killing it when it has not
// finished within limit (killed then says so).
func runLoad(cmd *exec.Cmd, limit time.Duration) (out []byte, killed bool, err error) {
	var ob bytes.Buffer
	cmd.Stdout, cmd.Stderr = &ob, &ob
	if err := cmd.Start(); err != nil {
		return nil, false, err
	}
	hung := time.AfterFunc(limit, func() { cmd.Process.Kill() })
	err = cmd.Wait()
	return ob.Bytes(), !hung.Stop(), err
}

// mismatch is what the original dc_test prints when a session it reads
// back is not the one it stored: its own check, which fails now and then
// against either server with multi-frame sessions (against the
// original's, within a few hundred operations at 3000-4096 bytes).
const mismatch = "received mismatched session"

// A round whose client failed that check is measured over the operations
// done before it when they are at least minPartial (one client only), and
// is run again otherwise, maxTries times at most.
//
// A load that has not finished after loadTimeout is killed and its round
// run again the same way: the original dc_test and dc_server once both
// slept for ten minutes in a multi-frame round (a deadlock between them),
// and the benchmark waited with them.
const (
	minPartial  = 2000
	maxTries    = 5
	loadTimeout = 2 * time.Minute
)

// clientCheckError is a load's failure, and whether it is dc_test's own
// check (then done: the operations it reports done before it).
type clientCheckError struct {
	err   error
	check bool
	done  int
}

func (e *clientCheckError) Error() string { return e.err.Error() }

// clientChecks counts, for one implementation in one case, the rounds in
// which dc_test's check failed: measured over part of the run, or run
// again.
type clientChecks struct{ partial, rerun int }

func (c clientChecks) any() bool { return c.partial+c.rerun > 0 }

func checkNote(ch [2]clientChecks) string {
	var parts []string
	for i, who := range []string{"against ours", "against the original"} {
		if ch[i].any() {
			parts = append(parts, fmt.Sprintf("%s %d round(s) measured over the operations before it, %d run again", who, ch[i].partial, ch[i].rerun))
		}
	}
	return strings.Join(parts, "; ")
}

// succeededBefore reads dc_test's "N tests succeeded before the first
// failure" (0 if absent).
func succeededBefore(out []byte) int {
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, " tests succeeded before"); i > 0 {
			f := strings.Fields(line[:i])
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[len(f)-1])
				return n
			}
		}
	}
	return 0
}

// runRound runs one round of a case for im, again while the load fails
// dc_test's own check too early to measure (at most maxTries), and counts
// those failures in ch. Any other failure ends it.
func runRound(dir string, im impl, c bcase, pin bool, ch *clientChecks) (result, error) {
	for try := 1; ; try++ {
		partial := false
		res, err := runCase(dir, im, c, pin, &partial)
		if partial {
			ch.partial++
		}
		var ce *clientCheckError
		if err == nil || !errors.As(err, &ce) || !ce.check || try == maxTries {
			if err != nil {
				err = fmt.Errorf("%s, %s: %v", im.name, c.name, err)
			}
			return res, err
		}
		ch.rerun++
	}
}

// prefill stores n sessions of 200 bytes with a 10-minute lifetime, each
// ADD answered before the next is sent (the original's server takes
// pipelined requests, but its proxy did not always).
func prefill(addr string, n int) error {
	network, a := "unix", strings.TrimPrefix(addr, "UNIX:")
	if strings.HasPrefix(addr, "IP:") {
		network, a = "tcp", strings.TrimPrefix(addr, "IP:")
	}
	nc, err := net.Dial(network, a)
	if err != nil {
		return err
	}
	defer nc.Close()
	rd := proto.NewReader(nc, proto.WantResponses)
	data := bytes.Repeat([]byte{0x5a}, 200)
	var msg []byte
	for i := 0; i < n; i++ {
		id := []byte(fmt.Sprintf("vsorig-prefill-%08d", i))
		msg, _ = proto.AppendMessage(msg[:0], &proto.Message{UID: uint32(i), Op: proto.OpAdd,
			Payload: proto.AppendAddRequest(nil, 600000, id, data)})
		if _, err := nc.Write(msg); err != nil {
			return err
		}
		m, err := rd.ReadMessage()
		if err != nil {
			return err
		}
		if len(m.Payload) != 1 || m.Payload[0] != proto.ResultOK {
			return fmt.Errorf("ADD %d answered % x", i, m.Payload)
		}
	}
	return nil
}

func lastLines(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "\n")
}

// cpuTime is the user+system time of a process (all its threads), from
// /proc/PID/stat. Under taskset the daemon is taskset's child by exec, so
// the PID is the daemon's.
func cpuTime(cmd *exec.Cmd) time.Duration {
	if cmd == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(addr string) error {
	network, a := "unix", strings.TrimPrefix(addr, "UNIX:")
	if strings.HasPrefix(addr, "IP:") {
		network, a = "tcp", strings.TrimPrefix(addr, "IP:")
	}
	end := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial(network, a)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(end) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "vsorig:", err)
		os.Exit(1)
	}
}

// nearOn is what our dc_client logs once its near cache is in use.
const nearOn = "the near cache is on"

// lineWatch is a process's stderr that waits for a string in it.
type lineWatch struct {
	want  string
	mu    sync.Mutex
	seen  []byte // the tail, so that a string split across writes is found
	found bool
	done  chan struct{}
}

func newLineWatch(want string) *lineWatch {
	return &lineWatch{want: want, done: make(chan struct{})}
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.found {
		return len(p), nil // the rest is not kept
	}
	w.seen = append(w.seen, p...)
	if bytes.Contains(w.seen, []byte(w.want)) {
		w.seen, w.found = nil, true
		close(w.done)
	} else if n := len(w.seen) - len(w.want); n > 0 {
		w.seen = append(w.seen[:0], w.seen[n:]...)
	}
	return len(p), nil
}

// wait waits up to d for the string.
func (w *lineWatch) wait(d time.Duration) error {
	select {
	case <-w.done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("did not log %q within %v", w.want, d)
	}
}
