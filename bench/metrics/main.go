// SPDX-License-Identifier: Apache-2.0

// Command metrics measures what -metrics costs: the same load against
// dc_server (and dc_client in front of it) started without and with
// -metrics, in alternating rounds, scraping /metrics once a second while
// metrics are on as Prometheus would. It prints, per case, the median
// operations per second of each and their ratio on/off, and the daemons'
// CPU time per operation (user+system, from their resource usage) and its
// ratio off/on. On a shared machine the CPU ratio is the steadier measure
// of the cost. 1.00 = free; the goal is at least 0.97.
//
//	go run ./bench/metrics -bin build/bin            (make bench)
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
)

var (
	binDir  = flag.String("bin", "build/bin", "directory holding dc_server and dc_client")
	rounds  = flag.Int("rounds", 5, "rounds per case and setting (medians are reported)")
	seconds = flag.Float64("seconds", 2, "length of one round")
	only    = flag.String("case", "", "run only the cases whose name contains this")
	port    = flag.Int("port", 28900, "first loopback port for -metrics (two are used)")
)

type loadCase struct {
	name    string
	proxy   bool // through dc_client
	clients int
	perOp   bool // a new connection per operation (as Apache through dc_client)
}

func main() {
	flag.Parse()
	cases := []loadCase{
		{"dc_server persistent 4 clients", false, 4, false},
		{"dc_server connection per op 2 clients", false, 2, true},
		{"dc_client+dc_server persistent 4 clients", true, 4, false},
		{"dc_client+dc_server connection per op 2 clients", true, 2, true},
	}
	fmt.Printf("metrics on vs off: %d rounds of %.1f s per setting, alternating; %d CPUs, GOMAXPROCS %d\n",
		*rounds, *seconds, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	fmt.Printf("%-48s %10s %10s %7s %11s %11s %7s\n", "case", "off ops/s", "on ops/s", "on/off", "off µs CPU", "on µs CPU", "off/on")
	worst, worstCPU := 10.0, 10.0
	for _, c := range cases {
		if !strings.Contains(c.name, *only) {
			continue
		}
		var off, on, offCPU, onCPU []float64
		for r := 0; r < *rounds; r++ {
			for _, m := range []bool{false, true} {
				v, cpu, err := run(c, m)
				if err != nil {
					fmt.Fprintln(os.Stderr, "bench:", c.name, err)
					os.Exit(1)
				}
				if m {
					on, onCPU = append(on, v), append(onCPU, cpu)
				} else {
					off, offCPU = append(off, v), append(offCPU, cpu)
				}
			}
		}
		a, b := median(off), median(on)
		ca, cb := median(offCPU), median(onCPU)
		worst, worstCPU = min(worst, b/a), min(worstCPU, ca/cb)
		fmt.Printf("%-48s %10.0f %10.0f %7.3f %11.2f %11.2f %7.3f\n", c.name, a, b, b/a, ca, cb, ca/cb)
	}
	fmt.Printf("worst ratios: throughput %.3f, CPU per operation %.3f (goal >= 0.97)\n", worst, worstCPU)
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

// run starts the daemons, loads them for one round and returns ops/s and
// the daemons' CPU microseconds per operation over their whole run
// (start-up and prefill included, alike for both settings).
func run(c loadCase, metrics bool) (rate, cpuPerOp float64, err error) {
	dir, err := os.MkdirTemp("", "dcbench")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	srvSock, cliSock := filepath.Join(dir, "s"), filepath.Join(dir, "c")
	var scrape []string
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			stop(p)
		}
	}()
	args := []string{"-listen", "UNIX:" + srvSock}
	if metrics {
		args = append(args, "-metrics", "IP:127.0.0.1:"+strconv.Itoa(*port))
		scrape = append(scrape, "http://127.0.0.1:"+strconv.Itoa(*port)+"/metrics")
	}
	srv, err := start(filepath.Join(*binDir, "dc_server"), srvSock, args...)
	if err != nil {
		return 0, 0, err
	}
	procs = append(procs, srv)
	target := srvSock
	if c.proxy {
		args := []string{"-listen", "UNIX:" + cliSock, "-server", "UNIX:" + srvSock}
		if metrics {
			args = append(args, "-metrics", "IP:127.0.0.1:"+strconv.Itoa(*port+1))
			scrape = append(scrape, "http://127.0.0.1:"+strconv.Itoa(*port+1)+"/metrics")
		}
		cli, err := start(filepath.Join(*binDir, "dc_client"), cliSock, args...)
		if err != nil {
			return 0, 0, err
		}
		procs = append(procs, cli)
		target = cliSock
	}
	if err := prefill(target); err != nil {
		return 0, 0, err
	}
	var ops atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, c.clients+1)
	for i := 0; i < c.clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := worker(target, i, c.perOp, done, &ops); err != nil {
				errs <- err
			}
		}(i)
	}
	if len(scrape) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					for _, u := range scrape {
						if resp, err := http.Get(u); err == nil {
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						}
					}
				}
			}
		}()
	}
	t0 := time.Now()
	time.Sleep(time.Duration(*seconds * float64(time.Second)))
	n := ops.Load()
	el := time.Since(t0)
	close(done)
	wg.Wait()
	select {
	case err := <-errs:
		return 0, 0, err
	default:
	}
	var cpu time.Duration
	for _, p := range procs {
		cpu += stop(p)
	}
	procs = nil
	return float64(n) / el.Seconds(), float64(cpu.Microseconds()) / float64(ops.Load()+sessions), nil
}

func start(bin, sock string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return cmd, nil
		}
	}
	stop(cmd)
	return nil, fmt.Errorf("%s did not start", bin)
}

// stop ends a daemon and returns the CPU time it used.
func stop(cmd *exec.Cmd) time.Duration {
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

const sessions = 1000

func id(i int) []byte { return []byte("bench-session-" + strconv.Itoa(i%sessions)) }

func prefill(sock string) error {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return err
	}
	defer c.Close()
	rd := proto.NewReader(c, proto.WantResponses)
	// A dc_client answers empty until its server connection is up.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ := proto.AppendMessage(nil, &proto.Message{UID: 1, Op: proto.OpHave, Payload: id(0)})
		if _, err := c.Write(b); err != nil {
			return err
		}
		m, err := rd.ReadMessage()
		if err != nil {
			return err
		}
		if len(m.Payload) == 1 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no server behind %s", sock)
		}
	}
	data := make([]byte, 200)
	for i := 0; i < sessions; i++ {
		if err := roundTrip(c, rd, proto.OpAdd, proto.AppendAddRequest(nil, 600000, id(i), data)); err != nil {
			return err
		}
	}
	return nil
}

func roundTrip(c net.Conn, rd *proto.Reader, op proto.Op, payload []byte) error {
	b, err := proto.AppendMessage(nil, &proto.Message{UID: 1, Op: op, Payload: payload})
	if err != nil {
		return err
	}
	if _, err := c.Write(b); err != nil {
		return err
	}
	m, err := rd.ReadMessage()
	if err != nil {
		return err
	}
	if op == proto.OpGet && len(m.Payload) != 200 {
		return fmt.Errorf("GET answered %d bytes", len(m.Payload))
	}
	return nil
}

// worker GETs existing sessions until done.
func worker(sock string, seed int, perOp bool, done <-chan struct{}, ops *atomic.Int64) error {
	var c net.Conn
	var rd *proto.Reader
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for i := seed * 7919; ; i++ {
		select {
		case <-done:
			return nil
		default:
		}
		if c == nil {
			var err error
			if c, err = net.Dial("unix", sock); err != nil {
				return err
			}
			rd = proto.NewReader(c, proto.WantResponses)
		}
		if err := roundTrip(c, rd, proto.OpGet, id(i)); err != nil {
			if strings.Contains(err.Error(), "closed") {
				return nil
			}
			return err
		}
		ops.Add(1)
		if perOp {
			c.Close()
			c = nil
		}
	}
}
