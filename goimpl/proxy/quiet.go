// SPDX-License-Identifier: Apache-2.0

package proxy

// quietAfter is how many requests a local connection serves before the
// poller is told to watch it for reading only (rawio.Quiet): on a unix
// socket each answer the application reads would otherwise wake a thread
// of this process for nothing. A connection per operation never pays for
// the change.
const quietAfter = 3
