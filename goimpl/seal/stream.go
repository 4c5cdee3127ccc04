// SPDX-License-Identifier: Apache-2.0

package seal

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A sealed stream (dc_server's -snapshot file with -sealkey) is a magic
// line, a random 16-byte tag of this stream, then chunks: a 4-byte
// big-endian header (the top bit marks the last chunk, the rest is the
// length of the sealed chunk that follows), and the chunk sealed as an
// entry (Seal) whose id is the tag, the chunk's index (8 bytes) and the
// last-chunk flag; its plaintext is a zero byte (so that no chunk is
// empty) and the stream's bytes. Each chunk authenticates its place: chunks cannot be
// reordered, dropped, moved between streams, or cut after the last.
var streamMagic = []byte("distcache-go sealed stream v1\n")

const (
	streamChunk = 64 << 10
	lastChunk   = 1 << 31
	streamTag   = 16
)

// ErrStream is wrapped by NewReader's errors about what it reads (not
// the underlying reader's own errors): not a sealed stream, or a damaged
// one. A chunk sealed with other keys gives ErrKeyID or ErrAuth.
var ErrStream = errors.New("seal: not a sealed stream, or a damaged one")

// IsStream reports whether b begins like a sealed stream.
func IsStream(b []byte) bool {
	return len(b) >= len(streamMagic) && string(b[:len(streamMagic)]) == string(streamMagic)
}

// Writer seals what is written to it; see NewWriter.
type Writer struct {
	w     io.Writer
	kr    *Keyring
	tag   [streamTag]byte
	index uint64
	buf   []byte // plaintext of the chunk being filled
	out   []byte
	err   error
}

// NewWriter returns a writer that seals everything written to it under the
// ring's first key, in chunks, onto w. Close writes the last chunk; it
// does not close w.
func NewWriter(w io.Writer, kr *Keyring) *Writer {
	sw := &Writer{w: w, kr: kr, buf: make([]byte, 1, streamChunk)}
	rand.Read(sw.tag[:])
	_, sw.err = w.Write(append(append([]byte(nil), streamMagic...), sw.tag[:]...))
	return sw
}

func (sw *Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && sw.err == nil {
		k := copy(sw.buf[len(sw.buf):cap(sw.buf)], p)
		sw.buf = sw.buf[:len(sw.buf)+k]
		p, n = p[k:], n+k
		if len(sw.buf) == cap(sw.buf) {
			sw.chunk(false)
		}
	}
	return n, sw.err
}

// Close seals and writes the last chunk (possibly empty).
func (sw *Writer) Close() error {
	if sw.err == nil {
		sw.chunk(true)
	}
	return sw.err
}

func (sw *Writer) chunk(last bool) {
	sw.out = append(sw.out[:0], 0, 0, 0, 0)
	sw.out = sw.kr.Seal(sw.out, chunkID(sw.tag[:], sw.index, last), sw.buf)
	h := uint32(len(sw.out) - 4)
	if last {
		h |= lastChunk
	}
	binary.BigEndian.PutUint32(sw.out, h)
	_, sw.err = sw.w.Write(sw.out)
	sw.buf = sw.buf[:1]
	sw.index++
}

func chunkID(tag []byte, index uint64, last bool) []byte {
	id := binary.BigEndian.AppendUint64(append(make([]byte, 0, streamTag+9), tag...), index)
	if last {
		return append(id, 1)
	}
	return append(id, 0)
}

// Reader opens a sealed stream; see NewReader.
type Reader struct {
	r     io.Reader
	kr    *Keyring
	tag   []byte
	index uint64
	plain []byte // opened, not yet read
	out   []byte // the buffer plain is in
	in    []byte
	done  bool
	err   error
}

// NewReader returns a reader of the stream NewWriter wrote, opened with
// the ring's keys. After the last chunk it returns io.EOF; a stream that
// is not one, is cut short or altered gives an error wrapping ErrStream,
// ErrKeyID or ErrAuth.
func NewReader(r io.Reader, kr *Keyring) *Reader {
	return &Reader{r: r, kr: kr}
}

func (sr *Reader) Read(p []byte) (int, error) {
	for len(sr.plain) == 0 {
		if sr.err != nil {
			return 0, sr.err
		}
		if sr.done {
			return 0, io.EOF
		}
		sr.err = sr.next()
	}
	n := copy(p, sr.plain)
	sr.plain = sr.plain[n:]
	return n, nil
}

func (sr *Reader) next() error {
	if sr.tag == nil {
		head := make([]byte, len(streamMagic)+streamTag)
		if _, err := io.ReadFull(sr.r, head); err != nil || !IsStream(head) {
			return sr.fail(err, "no header")
		}
		sr.tag = head[len(streamMagic):]
	}
	var hb [4]byte
	if _, err := io.ReadFull(sr.r, hb[:]); err != nil {
		return sr.fail(err, "cut short after %d chunks", sr.index)
	}
	h := binary.BigEndian.Uint32(hb[:])
	last, n := h&lastChunk != 0, int(h&^lastChunk)
	if n > streamChunk+Overhead(MaxKeyIDLen) {
		return sr.fail(nil, "chunk %d of %d bytes", sr.index, n)
	}
	if cap(sr.in) < n {
		sr.in = make([]byte, n)
	}
	sr.in = sr.in[:n]
	if _, err := io.ReadFull(sr.r, sr.in); err != nil {
		return sr.fail(err, "cut short in chunk %d", sr.index)
	}
	plain, err := sr.kr.Open(sr.out[:0], chunkID(sr.tag, sr.index, last), sr.in)
	if err != nil {
		if errors.Is(err, ErrFormat) {
			return sr.fail(nil, "chunk %d", sr.index)
		}
		return fmt.Errorf("chunk %d: %w", sr.index, err)
	}
	if len(plain) == 0 || plain[0] != 0 {
		return sr.fail(nil, "chunk %d", sr.index)
	}
	sr.out = plain
	sr.plain, sr.done = plain[1:], last
	sr.index++
	return nil
}

func (sr *Reader) fail(err error, what string, args ...any) error {
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	return fmt.Errorf("%w: %s", ErrStream, fmt.Sprintf(what, args...))
}
