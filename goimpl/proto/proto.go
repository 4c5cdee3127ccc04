// SPDX-License-Identifier: Apache-2.0

// Package proto is the distcache 1.5 wire protocol (protocol level 0x00110000):
// the 14-byte frame header, fragmentation of a message into frames of at most
// 2048 data bytes, reassembly with every validation rule of the original, and
// the payload encodings of the four operations.
//
// Decoding never panics and never acts on a partial frame: a frame is complete
// only when all 14+data_len bytes are present (the original decided 4 bytes
// early, EDGES E-2). Anything malformed is reported as a *CorruptError, which
// callers answer by closing that one connection.
package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire constants (doc/PROTOCOL.md §3, §5).
const (
	HeaderSize   = 14
	MaxFrameData = 2048                     // DC_MSG_MAX_DATA
	MaxFrames    = 16                       // DC_MAX_MSG
	MaxPayload   = MaxFrameData * MaxFrames // DC_MAX_TOTAL_DATA = 32768
	MaxIDLen     = 64                       // DC_MAX_ID_LEN
	MaxDataLen   = 32768                    // DC_MAX_DATA_LEN
	MaxExpiry    = 604800000                // DC_MAX_EXPIRY, ms (7 days)
	MinTimeout   = 500                      // DC_MIN_TIMEOUT, ms

	ProtoVersion = 0x0011
	PatchLevel   = 0x0000
	// ProtoLevel is stamped on every frame we send.
	ProtoLevel uint32 = ProtoVersion<<16 | PatchLevel

	// MaxMessageSize is the largest encoded message: 16 full frames.
	MaxMessageSize = MaxFrames * (HeaderSize + MaxFrameData)
)

// Op is the wire operation byte (doc/PROTOCOL.md §3). The C API's DC_CMD is
// this value plus one.
type Op uint8

// Wire operations.
const (
	OpAdd    Op = 0
	OpGet    Op = 1
	OpRemove Op = 2
	OpHave   Op = 3
	// OpTake is this implementation's extension (never used by 1.5): GET
	// and REMOVE in one atomic step, for single-use sessions. A 1.5 peer
	// closes the connection on it, so it is only sent to a server that
	// announced it (see FeaturesID).
	OpTake Op = 4
	// OpSubscribe is this implementation's extension, sent only to a
	// server that announced FeatureNotify: an empty request that makes
	// the connection a stream of OpNotice messages (doc/EXTENSIONS.md).
	OpSubscribe Op = 5
	// OpNotice is a message the server sends unasked on a subscribed
	// connection (Response set, uid a running count): the payload is
	// the id of a session that was removed or taken.
	OpNotice Op = 6
	// OpGetLife is this implementation's extension, sent only to a
	// server that announced FeatureGetLife: GET that also says how long
	// the session has left (AppendLife, ParseLife), so that a client may
	// keep a copy no longer than the server does.
	OpGetLife Op = 7
)

// Valid reports whether op is one of the four operations of 1.5, the set
// the C ABI and the DC_SERVER object model speak.
func (op Op) Valid() bool { return op <= OpHave }

// Known reports whether op is a 1.5 operation or an extension of ours:
// what the frame layer accepts.
func (op Op) Known() bool { return op <= OpGetLife }

func (op Op) String() string {
	switch op {
	case OpAdd:
		return "ADD"
	case OpGet:
		return "GET"
	case OpRemove:
		return "REMOVE"
	case OpHave:
		return "HAVE"
	case OpTake:
		return "TAKE"
	case OpSubscribe:
		return "SUBSCRIBE"
	case OpNotice:
		return "NOTICE"
	case OpGetLife:
		return "GETLIFE"
	}
	return fmt.Sprintf("OP(%d)", uint8(op))
}

// Cmd converts a wire operation to the C API's DC_CMD value (1..4).
func (op Op) Cmd() int { return int(op) + 1 }

// OpFromCmd converts a DC_CMD value (1..4) to a wire operation.
func OpFromCmd(cmd int) (Op, bool) {
	if cmd < 1 || cmd > 4 {
		return 0, false
	}
	return Op(cmd - 1), true
}

// Result codes carried in 1-byte responses (doc/PROTOCOL.md §5).
const (
	ResultOK           byte = 0x00 // DC_ERR_OK
	ResultNotOK        byte = 0x01 // DC_ERR_NOTOK
	ResultDisconnected byte = 0x02 // DC_ERR_DISCONNECTED (dc_client only)
	// ResultTooLarge answers an OpGetLife whose session and lifetime do
	// not fit one message: the client asks GET instead (an extension).
	ResultTooLarge     byte = 0x03
	AddErrCorrupt      byte = 0x64 // DC_ADD_ERR_CORRUPT
	AddErrMatching     byte = 0x65 // DC_ADD_ERR_MATCHING_SESSION
	AddErrTimeoutRange byte = 0x66 // DC_ADD_ERR_TIMEOUT_RANGE
	AddErrIDRange      byte = 0x67 // DC_ADD_ERR_ID_RANGE
	AddErrDataRange    byte = 0x68 // DC_ADD_ERR_DATA_RANGE
)

// ResultName names a result byte for logs and tracing.
func ResultName(b byte) string {
	switch b {
	case ResultOK:
		return "OK"
	case ResultNotOK:
		return "NOTOK"
	case ResultDisconnected:
		return "DISCONNECTED"
	case ResultTooLarge:
		return "TOO_LARGE"
	case AddErrCorrupt:
		return "ADD_ERR_CORRUPT"
	case AddErrMatching:
		return "ADD_ERR_MATCHING_SESSION"
	case AddErrTimeoutRange:
		return "ADD_ERR_TIMEOUT_RANGE"
	case AddErrIDRange:
		return "ADD_ERR_ID_RANGE"
	case AddErrDataRange:
		return "ADD_ERR_DATA_RANGE"
	}
	return fmt.Sprintf("0x%02x", b)
}

// ErrIncomplete means more bytes are needed before a frame can be decoded.
var ErrIncomplete = errors.New("distcache: incomplete frame")

// ErrPayloadTooLarge is returned when encoding a payload over MaxPayload.
var ErrPayloadTooLarge = errors.New("distcache: payload larger than 32768 bytes")

// ErrBadOp is returned when encoding an operation outside 0..6.
var ErrBadOp = errors.New("distcache: invalid operation")

// CorruptError describes why a byte stream is not valid distcache traffic.
// The connection it came from must be closed.
type CorruptError struct {
	Reason string
	Level  uint32 // the peer's protocol level, when the reason is a version mismatch
}

func (e *CorruptError) Error() string { return "distcache: corrupt stream: " + e.Reason }

func corrupt(reason string) error { return &CorruptError{Reason: reason} }

// IsCorrupt reports whether err is (or wraps) a *CorruptError.
func IsCorrupt(err error) bool {
	var c *CorruptError
	return errors.As(err, &c)
}

// Frame is one decoded frame. Data aliases the buffer it was parsed from.
type Frame struct {
	Level    uint32
	Response bool
	UID      uint32
	Op       Op
	Complete bool
	Data     []byte
}

// ParseFrame decodes the frame at the head of b. It returns the frame and
// the number of bytes it occupies (14 + data length). If b holds only part
// of a valid frame it returns ErrIncomplete; malformed bytes give a
// *CorruptError as soon as they are visible, so garbage is rejected without
// waiting for more input.
func ParseFrame(b []byte) (Frame, int, error) {
	var f Frame
	if len(b) < 5 {
		if len(b) >= 4 && binary.BigEndian.Uint32(b)>>16 != ProtoVersion {
			return f, 0, versionError(binary.BigEndian.Uint32(b))
		}
		return f, 0, ErrIncomplete
	}
	f.Level = binary.BigEndian.Uint32(b)
	if f.Level>>16 != ProtoVersion {
		return f, 0, versionError(f.Level)
	}
	switch b[4] {
	case 0:
	case 1:
		f.Response = true
	default:
		return f, 0, corrupt(fmt.Sprintf("is_response byte %d", b[4]))
	}
	if len(b) < 10 {
		return f, 0, ErrIncomplete
	}
	f.UID = binary.BigEndian.Uint32(b[5:])
	if b[9] != 0 {
		return f, 0, corrupt(fmt.Sprintf("op_class %d", b[9]))
	}
	if len(b) < 11 {
		return f, 0, ErrIncomplete
	}
	f.Op = Op(b[10])
	if !f.Op.Known() {
		return f, 0, corrupt(fmt.Sprintf("operation %d", b[10]))
	}
	if len(b) < 12 {
		return f, 0, ErrIncomplete
	}
	switch b[11] {
	case 0:
	case 1:
		f.Complete = true
	default:
		return f, 0, corrupt(fmt.Sprintf("complete byte %d", b[11]))
	}
	if len(b) < HeaderSize {
		return f, 0, ErrIncomplete
	}
	n := int(binary.BigEndian.Uint16(b[12:]))
	if n > MaxFrameData {
		return f, 0, corrupt(fmt.Sprintf("data_len %d > %d", n, MaxFrameData))
	}
	if !f.Complete && n != MaxFrameData {
		return f, 0, corrupt(fmt.Sprintf("incomplete frame with data_len %d", n))
	}
	if len(b) < HeaderSize+n {
		return f, 0, ErrIncomplete
	}
	f.Data = b[HeaderSize : HeaderSize+n : HeaderSize+n]
	return f, HeaderSize + n, nil
}

func versionError(level uint32) error {
	return &CorruptError{
		Reason: fmt.Sprintf("protocol incompatibility: my level is %08x, the peer's is %08x", ProtoLevel, level),
		Level:  level,
	}
}

// AppendFrameHeader appends one 14-byte frame header.
func AppendFrameHeader(dst []byte, response bool, uid uint32, op Op, complete bool, dataLen int) []byte {
	var r, c byte
	if response {
		r = 1
	}
	if complete {
		c = 1
	}
	dst = binary.BigEndian.AppendUint32(dst, ProtoLevel)
	dst = append(dst, r)
	dst = binary.BigEndian.AppendUint32(dst, uid)
	dst = append(dst, 0, byte(op), c)
	return binary.BigEndian.AppendUint16(dst, uint16(dataLen))
}

// Message is one logical request or response.
type Message struct {
	Response bool
	UID      uint32
	Op       Op
	Payload  []byte
}

// EncodedSize is the number of bytes AppendMessage produces for a payload
// of n bytes (n ≤ MaxPayload).
func EncodedSize(n int) int {
	frames := (n + MaxFrameData - 1) / MaxFrameData
	if frames == 0 {
		frames = 1
	}
	return frames*HeaderSize + n
}

// AppendMessage appends the frames of m to dst: full 2048-byte frames with
// complete=0, then a last frame with complete=1 (an empty payload is one
// empty frame; a multiple of 2048 ends on a full frame). Callers write the
// result with one system call so that original peers, which mis-handle
// frames split in their last bytes, see whole frames.
func AppendMessage(dst []byte, m *Message) ([]byte, error) {
	if len(m.Payload) > MaxPayload {
		return dst, ErrPayloadTooLarge
	}
	if !m.Op.Known() {
		return dst, ErrBadOp
	}
	p := m.Payload
	for {
		n := len(p)
		last := n <= MaxFrameData
		if !last {
			n = MaxFrameData
		}
		dst = AppendFrameHeader(dst, m.Response, m.UID, m.Op, last, n)
		dst = append(dst, p[:n]...)
		p = p[n:]
		if last {
			return dst, nil
		}
	}
}

// Assembler reassembles frames into messages (doc/PROTOCOL.md §4): the first
// frame fixes the uid and operation, continuation frames must match them,
// and the payload may not exceed MaxPayload. It optionally enforces the
// direction (requests only, or responses only). The zero value accepts both
// directions.
type Assembler struct {
	// Want restricts accepted frames: WantAny, WantRequests or WantResponses.
	Want     Direction
	inMsg    bool
	msg      Message
	payload  []byte
	complete bool
}

// Direction selects which frames an Assembler or Reader accepts.
type Direction uint8

// Directions.
const (
	WantAny Direction = iota
	WantRequests
	WantResponses
)

// Add feeds one frame. When it completes a message, Add returns it and
// true; the payload stays valid until the next call to Add or Reset, and
// while the bytes f was parsed from are not changed (a message of one
// frame is not copied: its payload is f.Data).
func (a *Assembler) Add(f Frame) (*Message, bool, error) {
	if a.Want == WantRequests && f.Response {
		return nil, false, corrupt("response where a request was expected")
	}
	if a.Want == WantResponses && !f.Response {
		return nil, false, corrupt("request where a response was expected")
	}
	if a.complete {
		a.complete = false
		a.inMsg = false
	}
	if !a.inMsg {
		a.inMsg = true
		a.msg = Message{Response: f.Response, UID: f.UID, Op: f.Op}
		a.payload = a.payload[:0]
		if f.Complete {
			// A message of one frame is that frame's data, where it lies.
			a.complete = true
			a.msg.Payload = f.Data
			return &a.msg, true, nil
		}
	} else if f.UID != a.msg.UID || f.Op != a.msg.Op || f.Response != a.msg.Response {
		return nil, false, corrupt("continuation frame does not match its message")
	}
	if len(a.payload)+len(f.Data) > MaxPayload {
		return nil, false, corrupt("message payload over 32768 bytes")
	}
	a.payload = append(a.payload, f.Data...)
	if !f.Complete {
		return nil, false, nil
	}
	a.complete = true
	a.msg.Payload = a.payload
	return &a.msg, true, nil
}

// InProgress reports whether a message has started but not completed.
func (a *Assembler) InProgress() bool { return a.inMsg && !a.complete }

// Reset drops any partial message.
func (a *Assembler) Reset() { a.inMsg, a.complete = false, false; a.payload = a.payload[:0] }

// Decode consumes whole frames from the head of b until one message
// completes or b runs out of whole frames. It returns the message (nil if
// none completed; its payload may alias b, see Add) and how many bytes
// were consumed. Errors are always
// *CorruptError; ErrIncomplete is never returned.
func (a *Assembler) Decode(b []byte) (*Message, int, error) {
	used := 0
	for {
		f, n, err := ParseFrame(b[used:])
		if err == ErrIncomplete {
			return nil, used, nil
		}
		if err != nil {
			return nil, used, err
		}
		used += n
		m, done, err := a.Add(f)
		if err != nil {
			return nil, used, err
		}
		if done {
			return m, used, nil
		}
	}
}
