// SPDX-License-Identifier: Apache-2.0

package plug

import (
	"errors"

	"github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// Flags (DC_PLUG_FLAG_*).
const (
	// FlagToServer marks a client-side plug: it sends requests and accepts
	// only responses. Without it the plug is server-side.
	FlagToServer uint32 = 0x0001
	// FlagNoFreeConn makes Free leave the connection alone.
	FlagNoFreeConn uint32 = 0x0002
)

// Commands in the C API numbering (DC_CMD).
const (
	CmdError  = 0
	CmdAdd    = 1
	CmdGet    = 2
	CmdRemove = 3
	CmdHave   = 4
)

// ReadState is the state of a plug's read half.
type ReadState uint8

// Read half states.
const (
	ReadEmpty ReadState = iota // no message started
	ReadIO                     // first frame(s) decoded, waiting for more
	ReadFull                   // a complete message waits to be read
	ReadUser                   // the application read it and has not consumed it
)

// WriteState is the state of a plug's write half.
type WriteState uint8

// Write half states.
const (
	WriteEmpty WriteState = iota // idle: Write may start a message
	WriteUser                    // a message is open (WriteMore, Commit, Rollback)
	WriteIO                      // committed, still being encoded into the send buffer
)

// frameLen is the encoded size of a full frame.
const frameLen = proto.HeaderSize + proto.MaxFrameData

// Plug is one DC_PLUG. All fields are plain values (see Export).
type Plug struct {
	conn  *nal.Connection
	flags uint32

	// read half
	rbuf     []byte // bytes taken from the connection, not yet decoded
	rstate   ReadState
	ruid     uint32
	rop      proto.Op
	rpayload []byte // the message being assembled or held
	corrupt  error  // sticky: the incoming stream is not valid

	// write half
	wstate   WriteState
	wuid     uint32
	wcmd     int
	wpayload []byte // the open message
	wenc     []byte // the committed message, encoded
	woff     int    // bytes of wenc already in the send buffer

	freed bool
}

// New wraps conn (DC_PLUG_new). conn should be live; unknown flag bits
// are kept and ignored. Returns nil only for a nil conn.
func New(conn *nal.Connection, flags uint32) *Plug {
	if conn == nil {
		return nil
	}
	return &Plug{conn: conn, flags: flags, rpayload: make([]byte, 0, proto.MaxFrameData)}
}

func (p *Plug) usable() bool { return p != nil && !p.freed }

// Conn returns the wrapped connection (nil once freed).
func (p *Plug) Conn() *nal.Connection {
	if !p.usable() {
		return nil
	}
	return p.conn
}

// Flags returns the flags given to New.
func (p *Plug) Flags() uint32 {
	if !p.usable() {
		return 0
	}
	return p.flags
}

// Free releases the plug and, unless FlagNoFreeConn was given, frees the
// connection (which unbinds it from its selector) (DC_PLUG_free). Returns
// true; false only for nil or an already freed plug.
func (p *Plug) Free() bool {
	if !p.usable() {
		return false
	}
	if p.flags&FlagNoFreeConn == 0 {
		p.conn.Free()
	}
	*p = Plug{freed: true}
	return true
}

// ToSelect binds the connection to sel (DC_PLUG_to_select); false if it
// is already bound to any selector (or not live).
func (p *Plug) ToSelect(sel *nal.Selector) bool {
	return p.usable() && p.conn.AddToSelector(sel)
}

// FromSelect unbinds the connection (DC_PLUG_from_select).
func (p *Plug) FromSelect() {
	if p.usable() {
		p.conn.DelFromSelector()
	}
}

// IO runs the connection's IO, decodes complete incoming frames (stopping
// when a message completes) and encodes pending outgoing frames
// (DC_PLUG_io). It returns false when the connection is dead or not
// bound to a selector, or the incoming data is corrupt; the caller then
// destroys the plug.
func (p *Plug) IO() bool {
	if !p.usable() || p.corrupt != nil {
		return false
	}
	if !p.conn.IO() {
		return false
	}
	if !p.readFlush() {
		return false
	}
	p.writeFlush()
	return true
}

// Flush does the message-level half of IO without network I/O: it decodes
// what the connection's read buffer already holds and encodes pending
// frames into its send buffer. It lets a caller that runs the connection's
// IO itself drive a plug (the DC_SERVER clients without IN_SERVER, E-34).
// Pending output is encoded even after the input turned out corrupt, so a
// queued answer can still be flushed before the connection is closed. It
// returns false if the input is corrupt.
func (p *Plug) Flush() bool {
	if !p.usable() {
		return false
	}
	p.writeFlush()
	if p.corrupt != nil {
		return false
	}
	return p.readFlush()
}

// Err returns why the incoming stream was judged corrupt (nil if it was
// not); for logging.
func (p *Plug) Err() error {
	if !p.usable() {
		return nil
	}
	return p.corrupt
}

// Partial reports whether bytes of an incoming message have arrived and
// not yet been read: a frame being assembled, decoded frames of an
// unfinished message, or undecoded bytes in the connection's read buffer.
func (p *Plug) Partial() bool {
	if !p.usable() {
		return false
	}
	rb := p.conn.Read()
	return len(p.rbuf) > 0 || p.rstate != ReadEmpty || rb != nil && rb.NotEmpty()
}

// ReadState returns the read half's state.
func (p *Plug) ReadState() ReadState {
	if !p.usable() {
		return ReadEmpty
	}
	return p.rstate
}

// WriteState returns the write half's state.
func (p *Plug) WriteState() WriteState {
	if !p.usable() {
		return WriteEmpty
	}
	return p.wstate
}

// WriteBusy reports whether a committed message is still being encoded
// into the connection's send buffer: Write fails until it is false.
func (p *Plug) WriteBusy() bool { return p.usable() && p.wstate == WriteIO }

// Read returns the complete incoming message (DC_PLUG_read): in FULL it
// moves to USER and returns it; in USER it returns it again only if
// resume is true; otherwise ok is false. cmd is in the C numbering (1..4).
// payload is the plug's own storage, never nil when ok, and unchanged
// until Consume or Free.
func (p *Plug) Read(resume bool) (uid uint32, cmd int, payload []byte, ok bool) {
	if !p.usable() {
		return 0, 0, nil, false
	}
	switch {
	case p.rstate == ReadFull, p.rstate == ReadUser && resume:
		p.rstate = ReadUser
		return p.ruid, p.rop.Cmd(), p.rpayload, true
	}
	return 0, 0, nil, false
}

// Consume discards the message the application read (USER → EMPTY) and
// decodes any following message already received (DC_PLUG_consume). It
// returns false if the read half was not in USER (nothing done) or if the
// data following the message is corrupt (the message is still consumed;
// the plug is unusable, and IO returns false from then on) (EDGES E-38).
func (p *Plug) Consume() bool {
	if !p.usable() || p.rstate != ReadUser {
		return false
	}
	p.rstate = ReadEmpty
	p.rpayload = p.rpayload[:0]
	if p.corrupt != nil {
		return false
	}
	return p.readFlush()
}

// Write opens an outgoing message with a copy of payload (DC_PLUG_write):
// in EMPTY it moves to USER; in USER it replaces the open message only if
// resume is true; in IO (WriteBusy) it fails. It also fails if cmd is not
// 1..4 (E-37) or len(payload) > proto.MaxPayload.
func (p *Plug) Write(resume bool, uid uint32, cmd int, payload []byte) bool {
	if !p.usable() || len(payload) > proto.MaxPayload {
		return false
	}
	if _, ok := proto.OpFromCmd(cmd); !ok {
		return false
	}
	switch {
	case p.wstate == WriteEmpty, p.wstate == WriteUser && resume:
	default:
		return false
	}
	p.wstate, p.wuid, p.wcmd = WriteUser, uid, cmd
	p.wpayload = append(p.wpayload[:0], payload...)
	return true
}

// WriteMore appends data to the open message (DC_PLUG_write_more): only
// in USER, with len(data) >= 1 and a total of at most proto.MaxPayload.
func (p *Plug) WriteMore(data []byte) bool {
	if !p.usable() || p.wstate != WriteUser || len(data) == 0 || len(p.wpayload)+len(data) > proto.MaxPayload {
		return false
	}
	p.wpayload = append(p.wpayload, data...)
	return true
}

// Commit closes the open message (USER → IO) and encodes as many frames
// as fit into the send buffer now; when all fit, the write half is EMPTY
// again (DC_PLUG_commit). True even if nothing fit yet: IO continues.
// False if no message is open.
func (p *Plug) Commit() bool {
	if !p.usable() || p.wstate != WriteUser {
		return false
	}
	op, _ := proto.OpFromCmd(p.wcmd)
	enc, err := proto.AppendMessage(p.wenc[:0], &proto.Message{
		Response: p.flags&FlagToServer == 0,
		UID:      p.wuid,
		Op:       op,
		Payload:  p.wpayload,
	})
	if err != nil { // cannot happen: cmd and size were checked by Write
		return false
	}
	p.wenc, p.woff, p.wstate = enc, 0, WriteIO
	p.wpayload = p.wpayload[:0]
	p.writeFlush()
	return true
}

// Rollback discards the open message (USER → EMPTY) (DC_PLUG_rollback).
func (p *Plug) Rollback() bool {
	if !p.usable() || p.wstate != WriteUser {
		return false
	}
	p.wstate = WriteEmpty
	p.wpayload = p.wpayload[:0]
	return true
}

var errDirection = errors.New("distcache: frame in the wrong direction")

// errExtension: the plug speaks the 1.5 protocol of the C ABI, whose
// callers know only its four operations.
var errExtension = errors.New("distcache: operation outside the 1.5 protocol")
var errContinuation = errors.New("distcache: continuation frame does not match its message")
var errTooLarge = errors.New("distcache: message payload larger than 32768 bytes")

// readFlush decodes frames while the read half is EMPTY or IO, stopping
// when a message completes. It returns false (and marks the plug
// corrupt) on invalid data.
func (p *Plug) readFlush() bool {
	wantResponse := p.flags&FlagToServer != 0
	for p.rstate == ReadEmpty || p.rstate == ReadIO {
		f, n, err := proto.ParseFrame(p.rbuf)
		if err == proto.ErrIncomplete {
			rb := p.conn.Read()
			if rb == nil || rb.Empty() {
				return true
			}
			p.rbuf = append(p.rbuf, rb.Data()...)
			rb.Discard(rb.Used())
			continue
		}
		if err == nil && f.Response != wantResponse {
			err = errDirection
		}
		if err == nil && f.Complete && !f.Op.Valid() {
			err = errExtension // refused as its message completes, as 1.5 would refuse it
		}
		if err == nil && p.rstate == ReadIO && (f.UID != p.ruid || f.Op != p.rop) {
			err = errContinuation
		}
		if err == nil && len(p.rpayload)+len(f.Data) > proto.MaxPayload {
			err = errTooLarge
		}
		if err != nil {
			p.corrupt = err
			return false
		}
		if p.rstate == ReadEmpty {
			p.ruid, p.rop = f.UID, f.Op
			p.rpayload = p.rpayload[:0]
		}
		p.rpayload = append(p.rpayload, f.Data...)
		// drop the frame, keeping rbuf's storage
		p.rbuf = p.rbuf[:copy(p.rbuf, p.rbuf[n:])]
		if f.Complete {
			p.rstate = ReadFull
		} else {
			p.rstate = ReadIO
		}
	}
	return true
}

// writeFlush moves encoded frames into the send buffer: whole frames when
// they fit; pieces only of a frame larger than the whole send buffer.
func (p *Plug) writeFlush() {
	if p.wstate != WriteIO {
		return
	}
	sb := p.conn.Send()
	if sb == nil {
		return
	}
	for p.woff < len(p.wenc) {
		start := p.woff / frameLen * frameLen
		end := min(start+frameLen, len(p.wenc))
		rem := end - p.woff
		free := int(sb.Unused())
		switch {
		case free >= rem:
			sb.Write(p.wenc[p.woff:end])
			p.woff = end
		case int(sb.Size()) < end-start && free > 0:
			p.woff += int(sb.Write(p.wenc[p.woff : p.woff+free]))
		default:
			return
		}
	}
	p.wstate, p.wenc, p.woff = WriteEmpty, p.wenc[:0], 0
}
