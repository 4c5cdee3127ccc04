// SPDX-License-Identifier: Apache-2.0

package nal

// Encode/decode helpers (NAL_decode_* / NAL_encode_*, NAL_decode_uint32(3)).
//
// The C functions move a cursor (*bin, *bin_len). Here the cursor is a
// slice: each function takes the remaining bytes and returns the remaining
// bytes after the operation plus ok. On failure (too few bytes) it returns
// the input slice unchanged and ok == false, and writes nothing. A cgo
// wrapper advances its pointer by len(in) - len(rest) and decreases the
// length by the same amount. Integers are big-endian.

// DecodeUint32 reads a big-endian uint32.
func DecodeUint32(bin []byte) (val uint32, rest []byte, ok bool) {
	if len(bin) < 4 {
		return 0, bin, false
	}
	return uint32(bin[0])<<24 | uint32(bin[1])<<16 | uint32(bin[2])<<8 | uint32(bin[3]), bin[4:], true
}

// DecodeUint16 reads a big-endian uint16.
func DecodeUint16(bin []byte) (val uint16, rest []byte, ok bool) {
	if len(bin) < 2 {
		return 0, bin, false
	}
	return uint16(bin[0])<<8 | uint16(bin[1]), bin[2:], true
}

// DecodeChar reads one byte.
func DecodeChar(bin []byte) (val byte, rest []byte, ok bool) {
	if len(bin) < 1 {
		return 0, bin, false
	}
	return bin[0], bin[1:], true
}

// DecodeBin copies len(val) bytes into val. Length 0 always succeeds.
func DecodeBin(bin []byte, val []byte) (rest []byte, ok bool) {
	if len(bin) < len(val) {
		return bin, false
	}
	copy(val, bin)
	return bin[len(val):], true
}

// EncodeUint32 writes v big-endian (the C version writes the low 32 bits
// of an unsigned long; the cgo layer truncates before calling).
func EncodeUint32(bin []byte, v uint32) (rest []byte, ok bool) {
	if len(bin) < 4 {
		return bin, false
	}
	bin[0], bin[1], bin[2], bin[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	return bin[4:], true
}

// EncodeUint16 writes v big-endian (the C version takes an unsigned int
// and writes its low 16 bits).
func EncodeUint16(bin []byte, v uint16) (rest []byte, ok bool) {
	if len(bin) < 2 {
		return bin, false
	}
	bin[0], bin[1] = byte(v>>8), byte(v)
	return bin[2:], true
}

// EncodeChar writes one byte.
func EncodeChar(bin []byte, v byte) (rest []byte, ok bool) {
	if len(bin) < 1 {
		return bin, false
	}
	bin[0] = v
	return bin[1:], true
}

// EncodeBin copies val. Length 0 always succeeds.
func EncodeBin(bin []byte, val []byte) (rest []byte, ok bool) {
	if len(bin) < len(val) {
		return bin, false
	}
	copy(bin, val)
	return bin[len(val):], true
}
