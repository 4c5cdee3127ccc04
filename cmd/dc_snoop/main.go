// SPDX-License-Identifier: Apache-2.0

// Command dc_snoop is a tracing proxy for the distcache protocol: it
// accepts connections, opens one to the server for each, forwards bytes
// both ways unchanged, and prints every frame it sees (see dc_snoop(1)).
//
// Each line starts with the original's format,
//
//	SNOOP_DBG_MSG: connection <id>, <dir>, message completed (request_uid = <uid>), total_len=<n>
//
// followed by the decoded details: time, operation, complete flag, data
// length, the session id in hex for requests and the result code of short
// responses. Traffic that is not valid framing is reported and forwarded
// untouched; that direction is then no longer decoded.
package main

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tool"
	"github.com/distcache-go/distcache/goimpl/proto"
)

const usage = `Usage: dc_snoop -listen <addr> -server <addr>
where options include:
   -listen <addr>     the address to accept connections on (required)
   -server <addr>     the address to forward them to (required)
   -connect <addr>    same as -server
   -sockowner <user>  owner of the unix socket
   -sockgroup <group> group of the unix socket (it becomes 0660 unless
                      -sockperms says otherwise)
   -sockperms <octal> permissions of the unix socket (default 0600: only
                      this user can connect)
   -version           print the version and exit
   -h, -help, -?      this help
`

var out = struct {
	sync.Mutex
	w io.Writer
}{w: os.Stderr}

func logf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	out.Lock()
	io.WriteString(out.w, s+"\n")
	out.Unlock()
}

func main() {
	var listen, server string
	var d tool.Daemon
	a := tool.NewArgs(os.Args[1:], usage)
	for a.Next() {
		switch a.Opt() {
		case "-listen":
			listen = a.Value()
		case "-server", "-connect":
			server = a.Value()
		case "-sockowner", "-sockgroup", "-sockperms":
			d.Option(a)
		default:
			a.Unknown()
		}
	}
	sigs := d.Signals()
	if listen == "" || server == "" {
		a.Fail("Error, must provide -listen and -server")
	}
	la, err := tool.ParseAddr(listen)
	if err != nil {
		tool.Die("Error, can't listen on '%s': %v", listen, err)
	}
	sa, err := tool.ParseAddr(server)
	if err == nil && !sa.CanConnect() {
		err = errors.New("not an address one can connect to")
	}
	if err != nil {
		tool.Die("Error, bad server address '%s': %v", server, err)
	}
	ln, err := tool.Listen(la)
	if err != nil {
		tool.Die("Error, can't listen on '%s': %v", listen, err)
	}
	d.SetupSocket(ln)
	go func() {
		<-sigs
		ln.Close()
		ln.RemoveSocket()
		os.Exit(0)
	}()
	var ids atomic.Int64
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				select {} // the signal handler exits
			}
			logf("SNOOP_DBG_MSG: accept failed: %v", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go pair(int(ids.Add(1)-1), c, sa)
	}
}

// pair relays one accepted connection to a new server connection.
func pair(id int, cl net.Conn, sa tool.Addr) {
	sv, err := sa.Dial(10 * time.Second)
	if err != nil {
		logf("SNOOP_DBG_MSG: connection %d, can't connect to the server: %v", id, err)
		cl.Close()
		return
	}
	logf("SNOOP_DBG_MSG: connection %d, opened (%s)", id, time.Now().Format("15:04:05.000000"))
	var wg sync.WaitGroup
	var once sync.Once
	// Once one direction has ended, the other gets a minute to finish, so
	// a peer that ignores the half-close cannot pin the pair for ever.
	done := func() {
		once.Do(func() {
			dl := time.Now().Add(time.Minute)
			cl.SetReadDeadline(dl)
			sv.SetReadDeadline(dl)
		})
		wg.Done()
	}
	wg.Add(2)
	go func() { relay(id, "client->server", cl, sv); done() }()
	go func() { relay(id, "server->client", sv, cl); done() }()
	wg.Wait()
	cl.Close()
	sv.Close()
	logf("SNOOP_DBG_MSG: connection %d, closed (%s)", id, time.Now().Format("15:04:05.000000"))
}

type closeWriter interface{ CloseWrite() error }

// relay copies src to dst, tracing frames. At the end of src it half-closes
// dst so the other direction can finish; on an error it closes both.
func relay(id int, dir string, src, dst net.Conn) {
	t := &tracer{id: id, dir: dir}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				dst.Close()
				return
			}
			t.feed(buf[:n])
		}
		if err != nil {
			t.end()
			if err == io.EOF {
				if cw, ok := dst.(closeWriter); ok {
					cw.CloseWrite()
					return
				}
			}
			src.Close()
			dst.Close()
			return
		}
	}
}

// tracer decodes one direction's byte stream frame by frame.
type tracer struct {
	id      int
	dir     string
	pending []byte
	broken  bool
	raw     int64 // bytes forwarded undecoded after breaking
	inMsg   bool  // a message's first frame has been seen, not its last
}

func (t *tracer) feed(b []byte) {
	if t.broken {
		t.raw += int64(len(b))
		return
	}
	t.pending = append(t.pending, b...)
	for {
		f, n, err := proto.ParseFrame(t.pending)
		if err == proto.ErrIncomplete {
			break
		}
		if err != nil {
			logf("SNOOP_DBG_MSG: connection %d, %s, malformed traffic (%v); forwarding it undecoded from here; %s",
				t.id, t.dir, err, hexPrefix(t.pending))
			if len(t.pending) >= proto.HeaderSize {
				if dl := binary.BigEndian.Uint16(t.pending[12:]); dl > proto.MaxFrameData {
					logf("SNOOP_DBG_MSG: connection %d, %s, message has illegal 'data_len' (%d)", t.id, t.dir, dl)
				}
			}
			t.broken = true
			t.raw = int64(len(t.pending))
			t.pending = nil
			return
		}
		t.print(f, n)
		t.pending = t.pending[n:]
	}
	if len(t.pending) == 0 {
		t.pending = t.pending[:0:0]
	}
}

func (t *tracer) end() {
	if t.broken {
		logf("SNOOP_DBG_MSG: connection %d, %s, %d undecoded bytes forwarded", t.id, t.dir, t.raw)
	} else if len(t.pending) > 0 {
		logf("SNOOP_DBG_MSG: connection %d, %s, stream ended inside a frame (%d bytes); %s",
			t.id, t.dir, len(t.pending), hexPrefix(t.pending))
	}
}

func (t *tracer) print(f proto.Frame, n int) {
	var b strings.Builder
	fmt.Fprintf(&b, "SNOOP_DBG_MSG: connection %d, %s, message completed (request_uid = %d), total_len=%d",
		t.id, t.dir, f.UID, n)
	kind := "request"
	if f.Response {
		kind = "response"
	}
	c := 0
	if f.Complete {
		c = 1
	}
	fmt.Fprintf(&b, "; time=%s %s op=%v complete=%d data_len=%d",
		time.Now().Format("15:04:05.000000"), kind, f.Op, c, len(f.Data))
	if f.Level != proto.ProtoLevel {
		fmt.Fprintf(&b, " level=%08x", f.Level)
	}
	first := !t.inMsg
	t.inMsg = !f.Complete
	if !first {
		b.WriteString(" (continuation)")
	} else if !f.Response {
		d := f.Data
		if f.Op == proto.OpAdd {
			if len(d) >= 8 {
				timeout := binary.BigEndian.Uint32(d)
				idLen := binary.BigEndian.Uint32(d[4:])
				fmt.Fprintf(&b, " timeout=%d id_len=%d", timeout, idLen)
				if uint64(idLen) <= uint64(len(d)-8) {
					fmt.Fprintf(&b, " id=%s session_len=%d", hex.EncodeToString(d[8:8+idLen]), len(d)-8-int(idLen))
					if !f.Complete {
						b.WriteString("+")
					}
				}
			} else {
				b.WriteString(" (ADD payload shorter than 8 bytes)")
			}
		} else {
			fmt.Fprintf(&b, " id=%s", hex.EncodeToString(d))
		}
	} else {
		switch {
		case len(f.Data) == 0 && f.Complete:
			b.WriteString(" result=empty (proxy has no server)")
		case len(f.Data) == 1 && f.Complete:
			fmt.Fprintf(&b, " result=0x%02x (%s)", f.Data[0], proto.ResultName(f.Data[0]))
		case f.Op == proto.OpGet:
			b.WriteString(" result=session data")
		}
	}
	logf("%s", b.String())
}

func hexPrefix(b []byte) string {
	if len(b) > 32 {
		return "first bytes " + hex.EncodeToString(b[:32]) + "..."
	}
	return "bytes " + hex.EncodeToString(b)
}
