// SPDX-License-Identifier: Apache-2.0

package sessiond

import (
	"encoding/binary"
	"errors"
)

// Datagram layout (stunnel src/ctx.c, CACHE_PACKET):
//
//	offset  size  field
//	0       1     version, always 1
//	1       1     type: 0 NEW, 1 GET, 2 REMOVE; replies 0x80 not found, 0x81 found
//	2       2     timeout in seconds, big-endian (NEW only; stunnel caps it at 64800)
//	4       32    key: the TLS session id, zero-padded to 32 bytes
//	36      0-512 value: the DER-encoded session (NEW, and a found reply)
const (
	Version     = 1
	KeySize     = 32
	HeaderSize  = 4 + KeySize
	MaxValue    = 512
	MaxDatagram = HeaderSize + MaxValue
)

// Datagram types.
const (
	TypeNew      byte = 0x00
	TypeGet      byte = 0x01
	TypeRemove   byte = 0x02
	TypeNotFound byte = 0x80
	TypeFound    byte = 0x81
)

// Reasons a datagram is rejected by Parse.
var (
	ErrShort    = errors.New("sessiond: datagram shorter than the 36-byte header")
	ErrVersion  = errors.New("sessiond: version is not 1")
	ErrType     = errors.New("sessiond: unknown type")
	ErrOversize = errors.New("sessiond: value longer than 512 bytes")
	ErrNoValue  = errors.New("sessiond: NEW without a value")
)

// Packet is one decoded datagram. Value aliases the buffer it was parsed from.
type Packet struct {
	Type    byte
	Timeout uint16 // seconds
	Key     [KeySize]byte
	Value   []byte
}

// Parse decodes a request datagram (NEW, GET or REMOVE). A GET or REMOVE
// may carry trailing bytes; they are returned in Value and ignored by the
// server. Replies (0x80, 0x81) are not requests and give ErrType.
func Parse(b []byte) (Packet, error) {
	p, err := parse(b, func(t byte) bool { return t == TypeNew || t == TypeGet || t == TypeRemove })
	if err == nil && p.Type == TypeNew && len(p.Value) == 0 {
		return p, ErrNoValue
	}
	return p, err
}

// ParseReply decodes a reply datagram as stunnel reads it: type 0x81 with
// the value, or 0x80.
func ParseReply(b []byte) (Packet, error) {
	return parse(b, func(t byte) bool { return t == TypeFound || t == TypeNotFound })
}

// parse decodes the header and value of a datagram whose type is one that
// valid accepts.
func parse(b []byte, valid func(byte) bool) (Packet, error) {
	var p Packet
	if len(b) < HeaderSize {
		return p, ErrShort
	}
	if len(b) > MaxDatagram {
		return p, ErrOversize
	}
	if b[0] != Version {
		return p, ErrVersion
	}
	p.Type = b[1]
	if !valid(p.Type) {
		return p, ErrType
	}
	p.Timeout = binary.BigEndian.Uint16(b[2:4])
	copy(p.Key[:], b[4:HeaderSize])
	p.Value = b[HeaderSize:]
	return p, nil
}

// Append encodes p after dst and returns the extended slice. It does not
// check p; a Value over MaxValue gives a datagram Parse rejects.
func (p *Packet) Append(dst []byte) []byte {
	dst = append(dst, Version, p.Type, byte(p.Timeout>>8), byte(p.Timeout))
	dst = append(dst, p.Key[:]...)
	return append(dst, p.Value...)
}

// KeyFromID returns the key field stunnel sends for a session id: the id
// zero-padded to 32 bytes. It reports false for ids longer than 32 bytes,
// which stunnel refuses to send.
func KeyFromID(id []byte) (k [KeySize]byte, ok bool) {
	if len(id) > KeySize {
		return k, false
	}
	copy(k[:], id)
	return k, true
}
