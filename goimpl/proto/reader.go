// SPDX-License-Identifier: Apache-2.0

package proto

import (
	"io"
)

// Reader reads whole messages from a byte stream. It reads in large chunks
// and keeps what follows a message for the next call, so pipelined traffic
// costs one read system call per batch, not per frame.
type Reader struct {
	r   io.Reader
	buf []byte // buffered bytes are buf[start:end]
	beg int
	end int
	asm Assembler
}

// NewReader returns a Reader accepting frames of the given direction.
func NewReader(r io.Reader, want Direction) *Reader {
	return &Reader{r: r, buf: make([]byte, 4*(HeaderSize+MaxFrameData)), asm: Assembler{Want: want}}
}

// Buffered is the number of bytes read from the stream but not yet decoded.
func (rd *Reader) Buffered() int { return rd.end - rd.beg }

// ReadMessage returns the next message. Its payload is valid until the next
// call. At a clean end of stream (no partial frame or message buffered) it
// returns io.EOF; a stream that ends inside a frame or message gives
// io.ErrUnexpectedEOF; invalid traffic gives a *CorruptError; otherwise the
// underlying reader's error.
func (rd *Reader) ReadMessage() (*Message, error) {
	for {
		m, n, err := rd.asm.Decode(rd.buf[rd.beg:rd.end])
		rd.beg += n
		if err != nil {
			return nil, err
		}
		if m != nil {
			return m, nil
		}
		// Decode consumed every whole frame, so what is left is less than
		// one frame; moving it to the front leaves room for a whole frame.
		if rd.beg == rd.end {
			rd.beg, rd.end = 0, 0
		} else if len(rd.buf)-rd.end < HeaderSize+MaxFrameData {
			rd.end = copy(rd.buf, rd.buf[rd.beg:rd.end])
			rd.beg = 0
		}
		k, err := rd.r.Read(rd.buf[rd.end:])
		rd.end += k
		if k > 0 {
			continue
		}
		if err == io.EOF && (rd.end > rd.beg || rd.asm.InProgress()) {
			return nil, io.ErrUnexpectedEOF
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, err
	}
}

// Pending returns the bytes another Reader needs to carry on where this
// one stopped (a connection handed to another process between two
// answers): the frames of a message begun but not complete, encoded
// again, then the bytes read but not yet decoded.
func (rd *Reader) Pending() []byte {
	var b []byte
	if rd.asm.InProgress() {
		// Every frame but a message's last carries exactly MaxFrameData.
		m := &rd.asm.msg
		for p := rd.asm.payload; len(p) > 0; p = p[min(len(p), MaxFrameData):] {
			n := min(len(p), MaxFrameData)
			b = AppendFrameHeader(b, m.Response, m.UID, m.Op, false, n)
			b = append(b, p[:n]...)
		}
	}
	return append(b, rd.buf[rd.beg:rd.end]...)
}
