// SPDX-License-Identifier: Apache-2.0

// Package latency derives a request timeout from the latency a server
// shows, so that a stalled server is found out fast while a slow machine
// is not taken for a stalled server. dc_client's upstream links
// (goimpl/upstream) and the client context (goimpl/client/dcctx, the C
// library's DC_CTX) share it.
//
// A Bound takes the duration of each answer (Observe) and gives the
// timeout in force (Timeout): Factor times the slowest answer of the
// current and the previous Window, never under the floor and never over
// the ceiling it was made with. Without an answer in the last two windows
// the floor applies. Known says whether the timeout rests on what the
// server showed (its answers have come for a Window, the last one recent),
// for a caller that then waits longer, as for a server it never heard. Late tells a timer that fired well after it was due
// (the process did not get the CPU, so the server's silence proves
// nothing): such a request deserves another timeout, up to MaxExtensions.
package latency
