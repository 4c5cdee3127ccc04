// SPDX-License-Identifier: Apache-2.0

// Package tlsconf builds the TLS configurations of the distcache link
// (dc_client to dc_server) from PEM files, reloads them on request without
// touching established connections, and turns handshake failures into one
// line that names the peer and the cause.
//
// A Server is made from a certificate chain and key (-tlscert, -tlskey)
// and, for mutual TLS, the CA certificates that client certificates must
// chain to (-tlsca): a client without a certificate, with an expired one,
// or with one from another CA is refused. A Client is made from the CA
// certificates that the server's certificate must chain to (-tlsca; the
// system roots without it), the name it must carry (-tlsname; the host of
// the address dialled without it), and optionally its own certificate and
// key. Both speak TLS 1.3 only unless AllowTLS12 is set.
//
// Each side keeps its loaded files as one immutable state behind an atomic
// pointer: the server picks the current state for every handshake
// (GetConfigForClient), the client for every dial. Reload reads the files
// again and swaps the state only when all of them load, so a broken file
// leaves the previous certificates in use; connections already
// established are never affected.
//
// Server.Handshake and Client.Handshake bound the handshake by a deadline
// and return a *RefusedError naming the peer and saying in words what went
// wrong (a plaintext client on a TLS listener, an unknown CA, a missing or
// expired certificate, a name mismatch, an old protocol version).
//
// Private key files that others (not the owner or group) may read or write
// are refused.
//
// Servers and Clients are safe for concurrent use.
package tlsconf
