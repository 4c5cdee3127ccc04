// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// The stream format carries a cache's entries to another process (a
// re-executed dc_server) or a file: a magic line, then per entry the id
// length and id, the data length and data (uvarints), and the absolute
// expiry (µs since the epoch, a varint); a zero id length ends the entries,
// followed by the entry count (uvarint) and a CRC-32 (IEEE) of everything
// before it (4 bytes, big-endian).
var streamMagic = []byte("distcache-go cache v1\n")

// ErrStream is wrapped by every error of ReadFrom about the stream's
// content (not the reader's own errors).
var ErrStream = errors.New("cache: not a cache stream, or a damaged one")

// WriteTo writes every live entry to w in the stream format, in Export's
// order.
func (c *Cache) WriteTo(w io.Writer) (int64, error) {
	h := crc32.NewIEEE()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	bw := bufio.NewWriterSize(cw, 64<<10)
	bw.Write(streamMagic)
	var n uint64
	var tmp [binary.MaxVarintLen64]byte
	for _, e := range c.Export() {
		bw.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(e.ID)))])
		bw.Write(e.ID)
		bw.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(e.Data)))])
		bw.Write(e.Data)
		bw.Write(tmp[:binary.PutVarint(tmp[:], e.Expiry)])
		n++
	}
	bw.WriteByte(0)
	bw.Write(tmp[:binary.PutUvarint(tmp[:], n)])
	if err := bw.Flush(); err != nil {
		return cw.n, err
	}
	m, err := w.Write(binary.BigEndian.AppendUint32(nil, h.Sum32()))
	return cw.n + int64(m), err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadFrom reads a stream written by WriteTo and imports its entries (as
// Import does: duplicates of live entries refused, the bounds kept). It
// imports nothing unless the whole stream is well-formed and its checksum
// matches, so a damaged file leaves the cache as it was.
func (c *Cache) ReadFrom(r io.Reader) (int64, error) {
	cr := &countReader{r: r}
	br := &hashReader{r: bufio.NewReaderSize(cr, 64<<10), h: crc32.NewIEEE()}
	magic := make([]byte, len(streamMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != string(streamMagic) {
		return cr.n, fmt.Errorf("%w: no header", ErrStream)
	}
	var entries []Entry
	for {
		idLen, err := binary.ReadUvarint(br)
		if err != nil {
			return cr.n, fmt.Errorf("%w: %v", ErrStream, err)
		}
		if idLen == 0 {
			break
		}
		if idLen > proto.MaxIDLen {
			return cr.n, fmt.Errorf("%w: id of %d bytes", ErrStream, idLen)
		}
		id := make([]byte, idLen)
		if _, err := io.ReadFull(br, id); err != nil {
			return cr.n, fmt.Errorf("%w: %v", ErrStream, err)
		}
		dataLen, err := binary.ReadUvarint(br)
		if err != nil || dataLen == 0 || dataLen > proto.MaxDataLen {
			return cr.n, fmt.Errorf("%w: data length", ErrStream)
		}
		data := make([]byte, dataLen)
		if _, err := io.ReadFull(br, data); err != nil {
			return cr.n, fmt.Errorf("%w: %v", ErrStream, err)
		}
		exp, err := binary.ReadVarint(br)
		if err != nil {
			return cr.n, fmt.Errorf("%w: %v", ErrStream, err)
		}
		entries = append(entries, Entry{ID: id, Data: data, Expiry: exp})
	}
	count, err := binary.ReadUvarint(br)
	if err != nil || count != uint64(len(entries)) {
		return cr.n, fmt.Errorf("%w: entry count", ErrStream)
	}
	sum := br.h.Sum32()
	var tail [4]byte
	if _, err := io.ReadFull(br.r, tail[:]); err != nil || binary.BigEndian.Uint32(tail[:]) != sum {
		return cr.n, fmt.Errorf("%w: checksum", ErrStream)
	}
	c.Import(entries)
	return cr.n, nil
}

// hashReader checksums what is read through it.
type hashReader struct {
	r *bufio.Reader
	h hash.Hash32
}

func (h *hashReader) ReadByte() (byte, error) {
	b, err := h.r.ReadByte()
	if err == nil {
		h.h.Write([]byte{b})
	}
	return b, err
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
