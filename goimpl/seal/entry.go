// SPDX-License-Identifier: Apache-2.0

package seal

import (
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Version is the first byte of every sealed entry in this format.
const Version = 0x01

const (
	nonceSize = chacha20poly1305.NonceSizeX // 24
	tagSize   = chacha20poly1305.Overhead   // 16
)

// Overhead is how many bytes sealing adds to data under a key id of
// keyIDLen bytes: 42 + keyIDLen.
func Overhead(keyIDLen int) int { return 2 + keyIDLen + nonceSize + tagSize }

// Reasons an entry does not open, for errors.Is.
var (
	ErrFormat  = errors.New("seal: not a sealed entry")
	ErrVersion = errors.New("seal: unknown sealed-entry version")
	ErrKeyID   = errors.New("seal: sealed with a key not in the key file")
	ErrAuth    = errors.New("seal: entry does not authenticate (altered, moved to another id, or sealed with another key of the same id)")
)

// Entry is a sealed entry split into its parts, as Decode finds them. The
// slices point into the decoded bytes.
type Entry struct {
	Version byte
	KeyID   []byte
	Nonce   []byte
	Sealed  []byte // ciphertext and tag
	Header  []byte // version, key id length and key id
}

// Decode splits a sealed entry without authenticating it.
func Decode(b []byte) (Entry, error) {
	var e Entry
	if len(b) < 2 {
		return e, ErrFormat
	}
	e.Version = b[0]
	if e.Version != Version {
		return e, fmt.Errorf("%w 0x%02x", ErrVersion, e.Version)
	}
	n := int(b[1])
	if n == 0 || n > MaxKeyIDLen {
		return e, ErrFormat
	}
	// At least one byte of data: the distcache data are never empty.
	if len(b) < 2+n+nonceSize+tagSize+1 {
		return e, ErrFormat
	}
	e.Header, e.KeyID = b[:2+n], b[2:2+n]
	for _, c := range e.KeyID {
		if !validIDByte(c) {
			return e, ErrFormat
		}
	}
	e.Nonce = b[2+n : 2+n+nonceSize]
	e.Sealed = b[2+n+nonceSize:]
	return e, nil
}

// Seal appends to dst the entry sealing data for session id under the
// ring's first key.
func (kr *Keyring) Seal(dst, id, data []byte) []byte {
	var nonce [nonceSize]byte
	rand.Read(nonce[:]) // never fails (crypto/rand aborts the process instead)
	return kr.sealNonce(dst, id, data, nonce[:])
}

// sealNonce is Seal with the nonce given (tests use fixed ones).
func (kr *Keyring) sealNonce(dst, id, data, nonce []byte) []byte {
	k := kr.first
	start := len(dst)
	dst = append(dst, k.header...)
	dst = append(dst, nonce...)
	nonce = dst[len(dst)-nonceSize:]
	ad := associatedData(make([]byte, 0, 64+len(k.header)+len(id)), dst[start:start+len(k.header)], id)
	return k.aead.Seal(dst, nonce, data, ad)
}

// Open appends to dst the data of the sealed entry b for session id. It
// fails (ErrFormat, ErrVersion, ErrKeyID, ErrAuth) unless b was sealed for
// exactly this id by a key of the ring and is unaltered.
func (kr *Keyring) Open(dst, id, b []byte) ([]byte, error) {
	var adBuf [2 + MaxKeyIDLen + 64]byte
	return kr.open(dst, id, b, adBuf[:0])
}

func (kr *Keyring) open(dst, id, b, adBuf []byte) ([]byte, error) {
	e, err := Decode(b)
	if err != nil {
		return dst, err
	}
	k := kr.byID[string(e.KeyID)]
	if k == nil {
		return dst, fmt.Errorf("%w (key id %q)", ErrKeyID, e.KeyID)
	}
	out, err := k.aead.Open(dst, e.Nonce, e.Sealed, associatedData(adBuf, e.Header, id))
	if err != nil {
		return dst, ErrAuth
	}
	return out, nil
}

// associatedData is what each entry is bound to: its own header (so that
// version and key id cannot be swapped) followed by the session id.
func associatedData(buf, header, id []byte) []byte {
	return append(append(buf[:0], header...), id...)
}
