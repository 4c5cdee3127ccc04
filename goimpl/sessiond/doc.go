// SPDX-License-Identifier: Apache-2.0

// Package sessiond serves stunnel's external session cache protocol
// ("sessiond = host:port" in stunnel.conf) from a store.Store (dc_server's
// session cache, or whatever store it fronts), so stunnel servers share TLS
// sessions with each other and with every other consumer of the same
// dc_server.
//
// The protocol is one UDP/IPv4 datagram per operation (packet.go has the
// layout): NEW stores a DER-encoded session for its timeout, GET is answered
// with the session (type 0x81) or "not found" (0x80), REMOVE deletes. NEW and
// REMOVE get no reply. stunnel waits only 200 µs, rounded up by the kernel to
// one scheduler tick, for a GET reply, so the server answers inline from the
// goroutine that read the request, from preallocated buffers.
//
// Key space: an entry is stored in the cache under a 33-byte id, the byte
// IDPrefix followed by the datagram's 32-byte key field (the TLS session id,
// zero-padded). TLS session ids are at most 32 bytes long, so no session a
// distcache client (Apache's mod_socache_dc, DC_CTX) stores for TLS can have
// the same id; 33 is within distcache's 64-byte id limit.
//
// Malformed datagrams (shorter than the header, a version other than 1, an
// unknown type, a value over 512 bytes, a NEW without a value) are dropped
// and counted in Stats; they never stop the server.
//
// A Server is safe for concurrent use: Stats and Close may be called while
// Serve runs.
package sessiond
