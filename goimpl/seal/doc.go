// SPDX-License-Identifier: Apache-2.0

// Package seal is a store.Store wrapper that encrypts and authenticates
// session data before it reaches the store it wraps, and checks and
// decrypts it on the way back, so that whatever holds the entries (a
// dc_server, Redis, the network between) can neither read a session nor
// plant or alter one.
//
// Each entry is sealed with XChaCha20-Poly1305 under the first key of a
// Keyring, with a fresh random 192-bit nonce, and with the session id (and
// the entry's own header) as associated data: an entry copied to another id,
// altered by one bit, or sealed with a key the ring does not list does not
// open, and is reported to the caller as a miss. Every key of the ring
// opens, so keys rotate without a flag day: list the new key first and
// keep the old one until the old entries have expired.
//
// A sealed entry is
//
//	version (1 byte, 0x01) | key id length n (1 byte) | key id (n bytes) |
//	nonce (24 bytes) | ciphertext (as long as the data) | tag (16 bytes)
//
// so it is 42+n bytes longer than the data (44 bytes with a two-letter
// key id); see Overhead. A wrapped store with a size limit applies it to
// the sealed entry: over a distcache upstream, whose requests carry at
// most 32768 bytes, a session may be up to 32768 - 8 - len(session id) -
// Overhead bytes long (32652 for a 32-byte TLS session id and a two-letter
// key id); TLS sessions are a few hundred bytes to a few kilobytes.
//
// Key files hold one key a line, "<id> <64 hex digits>", with "#" starting
// a comment; see ParseKeys and LoadKeyFile. A key file readable or
// writable by group or others is refused.
//
// A Store is safe for concurrent use; Reload swaps the keyring atomically,
// so requests in flight finish with the ring they started with.
package seal
