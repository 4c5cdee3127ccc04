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
	"math"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// The stream format carries a cache's entries to another process (a
// re-executed dc_server) or a file: a magic line, then records, each a
// kind byte and its fields (lengths and counters as uvarints, the expiry
// as a varint):
//
//	1 (entry):  id length, id, data length, data, absolute expiry (µs
//	            since the epoch), the add's sequence number (its place
//	            among entries of equal expiry), its lifetime in ms (0:
//	            not known)
//	2 (remove): id length, id
//	0 (end):    the number of records before it, then a CRC-32 (IEEE) of
//	            everything before the CRC (4 bytes, big-endian)
//
// A copy of the whole cache holds entry records only; the changes recorded
// while a copy was being taken (StartCopy, FinishCopy) hold both kinds, in
// the order they happened in each shard.
var streamMagic = []byte("distcache-go cache v2\n")

const (
	recEnd    = 0
	recEntry  = 1
	recRemove = 2
)

// ErrStream is wrapped by every error of ReadFrom about the stream's
// content (not the reader's own errors).
var ErrStream = errors.New("cache: not a cache stream, or a damaged one")

// WriteTo writes every live entry to w in the stream format. It copies one
// shard at a time under that shard's lock, straight into w: no copy of the
// cache is made, and the other shards serve meanwhile.
func (c *Cache) WriteTo(w io.Writer) (int64, error) { return c.writeEntries(w, false) }

// StartCopy is WriteTo for a cache that stays in use: from the moment each
// shard is copied, what changes in it (adds, removes, takes) is recorded,
// until FinishCopy writes the record. Expiries and evictions are not
// recorded: the reader applies the same clock and bounds.
func (c *Cache) StartCopy(w io.Writer) (int64, error) { return c.writeEntries(w, true) }

// FinishCopy stops recording and writes the changes recorded since
// StartCopy as a stream (a nil w discards them, after a failed copy).
// Read after the copy, they bring the reader to this cache's contents.
func (c *Cache) FinishCopy(w io.Writer) (int64, error) {
	sw := newStreamWriter(w)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		rec, n := s.journal, s.journalled
		s.journal, s.journalled, s.recording = nil, 0, false
		s.mu.Unlock()
		if w != nil {
			sw.bw.Write(rec)
			sw.n += uint64(n)
		}
	}
	if w == nil {
		return 0, nil
	}
	return sw.finish()
}

func (c *Cache) writeEntries(w io.Writer, record bool) (int64, error) {
	sw := newStreamWriter(w)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, x := range s.order {
			if s.slab.live(x) {
				sw.entry(s.slab.at(x.i))
			}
		}
		if record {
			s.recording, s.journal, s.journalled = true, nil, 0
		}
		s.mu.Unlock()
		if sw.cw.err != nil {
			break
		}
	}
	return sw.finish()
}

// journalAdd and journalRemove record a change of a shard being copied
// (under its lock).
func (s *shard) journalAdd(e *entry) {
	s.journal = appendEntry(s.journal, e)
	s.journalled++
}

func (s *shard) journalRemove(id []byte) {
	s.journal = append(s.journal, recRemove)
	s.journal = binary.AppendUvarint(s.journal, uint64(len(id)))
	s.journal = append(s.journal, id...)
	s.journalled++
}

func appendEntry(b []byte, e *entry) []byte {
	b = append(b, recEntry)
	b = binary.AppendUvarint(b, uint64(e.idLen))
	b = append(b, e.id()...)
	b = binary.AppendUvarint(b, uint64(len(e.data())))
	b = append(b, e.data()...)
	b = binary.AppendVarint(b, e.expiry)
	b = binary.AppendUvarint(b, e.seq)
	return binary.AppendUvarint(b, uint64(e.ttlMS))
}

// streamWriter writes a stream: bw buffers, cw counts and keeps the first
// error, h checksums.
type streamWriter struct {
	bw  *bufio.Writer
	cw  *countWriter
	h   hash.Hash32
	n   uint64 // records written
	tmp []byte
}

func newStreamWriter(w io.Writer) *streamWriter {
	h := crc32.NewIEEE()
	cw := &countWriter{w: w, h: h}
	sw := &streamWriter{bw: bufio.NewWriterSize(cw, 64<<10), cw: cw, h: h}
	sw.bw.Write(streamMagic)
	return sw
}

func (sw *streamWriter) entry(e *entry) {
	sw.tmp = appendEntry(sw.tmp[:0], e)
	sw.bw.Write(sw.tmp)
	sw.n++
}

func (sw *streamWriter) finish() (int64, error) {
	sw.bw.WriteByte(recEnd)
	sw.bw.Write(binary.AppendUvarint(sw.tmp[:0], sw.n))
	if err := sw.bw.Flush(); err != nil {
		return sw.cw.n, err
	}
	sw.cw.h = nil
	sw.cw.Write(binary.BigEndian.AppendUint32(nil, sw.h.Sum32()))
	return sw.cw.n, sw.cw.err
}

// countWriter checksums (while h is set) and counts what it writes, and
// once a write fails writes nothing more.
type countWriter struct {
	w   io.Writer
	h   hash.Hash32
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.h != nil {
		c.h.Write(p)
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// ReadFrom reads a stream written by WriteTo, StartCopy or FinishCopy and
// applies it: entries are imported as Import does (with their place in the
// eviction order; duplicates of live entries refused; the bounds kept),
// removes remove. It applies nothing unless the whole stream is well-formed
// and its checksum matches, so a damaged file leaves the cache as it was.
// What it holds meanwhile is the entries' own storage (which the cache
// then keeps) and 48 bytes per record.
func (c *Cache) ReadFrom(r io.Reader) (int64, error) {
	sr := &streamReader{r: r, buf: make([]byte, 64<<10), h: crc32.NewIEEE()}
	fail := func(what string, args ...any) (int64, error) {
		if sr.err != nil && !errors.Is(sr.err, io.EOF) && !errors.Is(sr.err, io.ErrUnexpectedEOF) {
			return sr.n, sr.err // the reader's own failure
		}
		return sr.n, fmt.Errorf("%w: %s", ErrStream, fmt.Sprintf(what, args...))
	}
	if magic := sr.bytes(len(streamMagic)); magic == nil || string(magic) != string(streamMagic) {
		return fail("no header")
	}
	var recs records
	for {
		kind, ok := sr.byte()
		if !ok {
			return fail("truncated")
		}
		if kind == recEnd {
			break
		}
		idLen := sr.uvarint()
		if idLen > proto.MaxIDLen || kind == recRemove && idLen == 0 {
			return fail("id of %d bytes", idLen)
		}
		switch kind {
		case recEntry:
			var idBuf [proto.MaxIDLen]byte // the next read may move the buffer
			id := idBuf[:copy(idBuf[:], sr.bytes(int(idLen)))]
			dataLen := sr.uvarint()
			if dataLen == 0 || dataLen > proto.MaxDataLen {
				return fail("data of %d bytes", dataLen)
			}
			data := sr.bytes(int(dataLen))
			exp, seq, ttl := sr.varint(), sr.uvarint(), sr.uvarint()
			if sr.err != nil {
				return fail("truncated")
			}
			if ttl > math.MaxUint32 {
				return fail("lifetime %d", ttl)
			}
			recs.add(record{buf: entryBuf(id, data), idLen: int32(idLen), expiry: exp, seq: seq, ttlMS: uint32(ttl)})
		case recRemove:
			id := sr.bytes(int(idLen))
			if sr.err != nil {
				return fail("truncated")
			}
			recs.add(record{buf: append([]byte(nil), id...), idLen: -1})
		default:
			return fail("record kind %d", kind)
		}
	}
	count := sr.uvarint()
	if sr.err != nil || count != uint64(recs.n) {
		return fail("record count")
	}
	sum := sr.sum()
	tail := sr.bytes(4)
	if tail == nil || binary.BigEndian.Uint32(tail) != sum {
		return fail("checksum")
	}
	c.apply(&recs)
	return sr.n, nil
}

// record is one decoded record: an entry's storage block, or (idLen -1) the
// id of a remove.
type record struct {
	buf    []byte
	expiry int64
	seq    uint64
	idLen  int32
	ttlMS  uint32
}

// records is a list in blocks, so that a long stream is never copied as
// the list grows.
type records struct {
	blocks [][]record
	n      int
}

const recordBlock = 4096

func (rs *records) add(r record) {
	if rs.n%recordBlock == 0 {
		rs.blocks = append(rs.blocks, make([]record, 0, recordBlock))
	}
	b := &rs.blocks[len(rs.blocks)-1]
	*b = append(*b, r)
	rs.n++
}

// apply carries out the records in order. Imported entries keep their
// sequence numbers, so the eviction order among entries of equal expiry is
// the writer's; the cache's own counter then continues above them.
func (c *Cache) apply(rs *records) {
	c.reserve(rs)
	var top uint64
	for bi, b := range rs.blocks {
		for _, r := range b {
			if r.idLen < 0 {
				s := c.shard(r.buf)
				s.mu.Lock()
				s.remove(math.MinInt64, r.buf)
				s.mu.Unlock()
				continue
			}
			c.insertSeq(math.MinInt64, r.buf, int(r.idLen), r.expiry, r.ttlMS, r.seq)
			top = max(top, r.seq)
		}
		rs.blocks[bi] = nil // what is applied belongs to the cache now
	}
	for {
		cur := c.seq.Load()
		if cur >= top || c.seq.CompareAndSwap(cur, top) {
			return
		}
	}
}

// reserve sizes the empty shards for the entries rs brings them, so that a
// large copy into a fresh cache (a re-exec, a snapshot) never grows a map
// step by step.
func (c *Cache) reserve(rs *records) {
	want := make([]int, len(c.shards))
	for _, b := range rs.blocks {
		for _, r := range b {
			if r.idLen >= 0 {
				want[c.shardIndex(r.buf[:r.idLen])]++
			}
		}
	}
	for i, n := range want {
		s := &c.shards[i]
		s.mu.Lock()
		if n > 0 && len(s.index) == 0 && len(s.order) == 0 {
			s.index = make(map[string]int32, n)
			s.slab = slab{entries: make([]entry, 0, n)}
			s.order = make(expiryHeap, 0, n)
		}
		s.mu.Unlock()
	}
}

// streamReader reads a stream in large blocks, checksumming what has been
// consumed (lazily, a block at a time). After a short read, err is set and
// every later call returns zero values (io.ReadAtLeast reports an error
// only when it read nothing, so err is set only by a read past the end).
type streamReader struct {
	r        io.Reader
	buf      []byte
	pos, end int
	hashed   int // buf[:hashed] is in h
	h        hash.Hash32
	n        int64
	err      error
}

func (sr *streamReader) fill() bool {
	if sr.err != nil {
		return false
	}
	sr.h.Write(sr.buf[sr.hashed:sr.pos])
	sr.end = copy(sr.buf, sr.buf[sr.pos:sr.end])
	sr.pos, sr.hashed = 0, 0
	k, err := io.ReadAtLeast(sr.r, sr.buf[sr.end:], 1)
	sr.end += k
	sr.n += int64(k)
	if err != nil {
		sr.err = err
		return k > 0
	}
	return true
}

// short records that the stream ended (or did not parse) where more was
// needed, keeping the reader's own error if it failed.
func (sr *streamReader) short() {
	if sr.err == nil || sr.err == io.EOF {
		sr.err = io.ErrUnexpectedEOF
	}
}

func (sr *streamReader) byte() (byte, bool) {
	if sr.pos == sr.end && !sr.fill() {
		return 0, false
	}
	b := sr.buf[sr.pos]
	sr.pos++
	return b, true
}

// bytes returns the next n bytes (valid until the next call), nil if the
// stream ends first.
func (sr *streamReader) bytes(n int) []byte {
	if n > len(sr.buf) {
		sr.short()
		return nil
	}
	for sr.end-sr.pos < n {
		if !sr.fill() {
			sr.short()
			return nil
		}
	}
	b := sr.buf[sr.pos : sr.pos+n]
	sr.pos += n
	return b
}

func (sr *streamReader) uvarint() uint64 {
	if sr.end-sr.pos >= binary.MaxVarintLen64 {
		v, k := binary.Uvarint(sr.buf[sr.pos:sr.end])
		if k <= 0 {
			sr.short()
			return 0
		}
		sr.pos += k
		return v
	}
	v, err := binary.ReadUvarint(byteReader{sr})
	if err != nil {
		sr.short()
	}
	return v
}

func (sr *streamReader) varint() int64 {
	u := sr.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

// sum is the checksum of everything consumed so far.
func (sr *streamReader) sum() uint32 {
	sr.h.Write(sr.buf[sr.hashed:sr.pos])
	sr.hashed = sr.pos
	return sr.h.Sum32()
}

type byteReader struct{ sr *streamReader }

func (b byteReader) ReadByte() (byte, error) {
	if c, ok := b.sr.byte(); ok {
		return c, nil
	}
	return 0, io.ErrUnexpectedEOF
}
