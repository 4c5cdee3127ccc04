// SPDX-License-Identifier: Apache-2.0

package seal

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the length of a sealing key in bytes.
const KeySize = chacha20poly1305.KeySize

// MaxKeyIDLen is the longest key id; ids are made of letters, digits and
// "._-".
const MaxKeyIDLen = 16

// Key is one named sealing key.
type Key struct {
	ID     string
	Secret [KeySize]byte
}

// Keyring is an immutable set of keys: the first seals, every one opens.
type Keyring struct {
	first  *ringKey
	byID   map[string]*ringKey
	source string // file it was read from, for messages ("" = built in memory)
}

type ringKey struct {
	id     string
	header []byte // version, id length, id: the start of every entry it seals
	aead   cipher.AEAD
}

// NewKeyring builds a ring from keys (at least one, distinct valid ids);
// keys[0] seals.
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("seal: no keys")
	}
	kr := &Keyring{byID: make(map[string]*ringKey, len(keys))}
	for i, k := range keys {
		if err := checkKeyID(k.ID); err != nil {
			return nil, err
		}
		if _, dup := kr.byID[k.ID]; dup {
			return nil, fmt.Errorf("seal: key id %q listed twice", k.ID)
		}
		a, err := chacha20poly1305.NewX(k.Secret[:])
		if err != nil {
			return nil, err
		}
		rk := &ringKey{id: k.ID, aead: a}
		rk.header = append([]byte{Version, byte(len(k.ID))}, k.ID...)
		kr.byID[k.ID] = rk
		if i == 0 {
			kr.first = rk
		}
	}
	return kr, nil
}

// SealingKeyID is the id of the key that seals.
func (kr *Keyring) SealingKeyID() string { return kr.first.id }

// KeyIDs lists the ring's key ids, the sealing key first.
func (kr *Keyring) KeyIDs() []string {
	ids := []string{kr.first.id}
	for id := range kr.byID {
		if id != kr.first.id {
			ids = append(ids, id)
		}
	}
	return ids
}

func checkKeyID(id string) error {
	if id == "" || len(id) > MaxKeyIDLen {
		return fmt.Errorf("seal: key id %q must be 1 to %d characters", id, MaxKeyIDLen)
	}
	for _, c := range []byte(id) {
		if !validIDByte(c) {
			return fmt.Errorf("seal: key id %q may hold only letters, digits and . _ -", id)
		}
	}
	return nil
}

func validIDByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// ParseKeys reads a key file's text: one key a line as "<id> <64 hex
// digits>", blank lines ignored, "#" starting a comment to the end of the
// line. The first key seals. Errors name the line, never the key.
func ParseKeys(r io.Reader) (*Keyring, error) {
	var keys []Key
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"<id> <64 hex digits>\", got %d fields", n, len(f))
		}
		if err := checkKeyID(f[0]); err != nil {
			return nil, fmt.Errorf("line %d: %v", n, strings.TrimPrefix(err.Error(), "seal: "))
		}
		if len(f[1]) != 2*KeySize {
			return nil, fmt.Errorf("line %d: key %q has %d hex digits, want %d", n, f[0], len(f[1]), 2*KeySize)
		}
		k := Key{ID: f[0]}
		if _, err := hex.Decode(k.Secret[:], []byte(f[1])); err != nil {
			return nil, fmt.Errorf("line %d: key %q is not hexadecimal", n, f[0])
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	kr, err := NewKeyring(keys...)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "seal: "))
	}
	return kr, nil
}

// LoadKeyFile reads the key file at path. A file that group or others may
// read or write is refused (its keys may already be known to someone
// else), as is anything but a regular file.
func LoadKeyFile(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seal: key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal: key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("seal: key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o066 != 0 {
		return nil, fmt.Errorf("seal: key file %s has mode %04o: group or others may read or write it; refusing it (chmod 600 %s)",
			path, perm, path)
	}
	kr, err := ParseKeys(f)
	if err != nil {
		return nil, fmt.Errorf("seal: key file %s: %w", path, err)
	}
	kr.source = path
	return kr, nil
}
