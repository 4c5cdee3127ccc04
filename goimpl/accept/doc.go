// SPDX-License-Identifier: Apache-2.0

// Package accept is what the distcache daemons share around their
// listeners: the accept loop with its connection limit and graceful
// shutdown (Set; an event loop that accepts and serves by itself, see
// goimpl/evloop, registers with AddLoop and hands connections on with Go),
// and the rate-limited log (RateLog) through which they
// report, so that a flood of bad peers cannot flood the log.
package accept
