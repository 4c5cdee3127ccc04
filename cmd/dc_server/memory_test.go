// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"fmt"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// procKB reads a VmRSS/VmHWM-style field of /proc/pid/status, in KiB.
func procKB(t *testing.T, p *tooltest.Proc, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, p.Cmd.Process.Pid)
	return 0
}

// fill adds total bytes of sessions of mixed sizes (100 B .. 16 KiB) over
// four pipelining connections, reading every answer.
func fill(t *testing.T, sock string, total int64) {
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("unix", sock)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			rd := proto.NewReader(nc, proto.WantResponses)
			rnd := rand.New(rand.NewSource(int64(g)))
			data := make([]byte, 16<<10)
			var sent int64
			done := make(chan error, 1)
			const batch = 32
			for i := 0; sent < total/4; i += batch {
				var w []byte
				for j := 0; j < batch; j++ {
					size := 100 + rnd.Intn(2000)
					if rnd.Intn(10) == 0 {
						size = 2000 + rnd.Intn(14<<10)
					}
					sent += int64(size)
					id := []byte(fmt.Sprintf("fill-%d-%09d", g, i+j))
					w = append(w, tooltest.Request(uint32(j), proto.OpAdd, tooltest.AddPayload(3600000, id, data[:size]))...)
				}
				go func() {
					for j := 0; j < batch; j++ {
						if _, err := rd.ReadMessage(); err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
				nc.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := nc.Write(w); err != nil {
					errs <- err
					return
				}
				if err := <-done; err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// -maxbytes is the process's memory for sessions: filled four times over
// with mixed sizes, dc_server's peak RSS stays within 1.15 x the bound plus
// a fixed base (issue 10 item 2; it was 1.8 to 2.3 x).
func TestMaxBytesBoundsRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 256 MB")
	}
	const bound = 64 << 20
	p, sock := start(t, "-maxbytes", "64M", "-sessions", "100000000")
	fill(t, sock, 4*bound)
	hwm := procKB(t, p, "VmHWM") << 10
	rss := procKB(t, p, "VmRSS") << 10
	limit := int64(bound)*115/100 + baseRSS
	t.Logf("-maxbytes 64M: peak RSS %.1f MB, RSS %.1f MB, allowed %.1f MB", float64(hwm)/(1<<20), float64(rss)/(1<<20), float64(limit)/(1<<20))
	if hwm > limit {
		t.Fatalf("peak RSS %d > 1.15 x -maxbytes + %d = %d", hwm, baseRSS, limit)
	}
}

// baseRSS is the fixed part of dc_server's memory the README states: the
// runtime, code and data, and idle buffers.
const baseRSS = 24 << 20
