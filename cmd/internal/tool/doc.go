// SPDX-License-Identifier: Apache-2.0

// Package tool holds what the distcache command-line tools share: the
// address syntax of distcache (IP:, IPv4:, UNIX:, FD: and our IPv6:
// extension) mapped onto the net package, exact single-dash option
// parsing with the original error messages, daemonising by re-executing
// the program, pid files, dropping privileges and unix socket ownership.
// The accept loop and the rate-limited logger are goimpl/accept's.
//
// It is internal to cmd/: the libnal-level address parser for the C ABI is
// goimpl/nal.
package tool
