// SPDX-License-Identifier: Apache-2.0

// Package wiretest compiles the C front's frame codec (wire.c, a link to
// capi/front/wire.c: the fast path's second encoder and decoder of the
// distcache frame) into Go, so that its test can check it against
// goimpl/proto, the one definition of the frame: encode both ways, decode
// both ways, on generated and fuzzed frames, valid and malformed. Nothing
// else uses it.
package wiretest

/*
#cgo CFLAGS: -I${SRCDIR}/../front -Wall -Wextra -Werror
#include <stdlib.h>
#include "wire.h"

static size_t enc1(unsigned char *out, int response, uint32_t uid, unsigned op,
		const unsigned char *p, size_t n, size_t split)
{
	struct dcw_part parts[2];

	parts[0].p = p;
	parts[0].n = split;
	parts[1].p = p + split;
	parts[1].n = n - split;
	return dcw_encode(out, response, uid, op, parts, 2);
}
*/
import "C"

import "unsafe"

// Status is dcw_decode's result.
type Status int

// The statuses of Decode.
const (
	Incomplete Status = C.DCW_INCOMPLETE
	Done       Status = C.DCW_DONE
	Corrupt    Status = C.DCW_CORRUPT
)

// Directions, as dcw_decode takes them.
const (
	WantAny       = C.DCW_WANT_ANY
	WantRequests  = C.DCW_WANT_REQUESTS
	WantResponses = C.DCW_WANT_RESPONSES
)

// MaxMessage is DCW_MAX_MESSAGE.
const MaxMessage = C.DCW_MAX_MESSAGE

// Encode is dcw_encode of payload, given to it in two parts split at
// split; nil when the C encoder refuses.
func Encode(response bool, uid uint32, op uint8, payload []byte, split int) []byte {
	out := (*C.uchar)(C.malloc(C.DCW_MAX_MESSAGE))
	defer C.free(unsafe.Pointer(out))
	p := (*C.uchar)(C.CBytes(append([]byte{0}, payload...)))
	defer C.free(unsafe.Pointer(p))
	r := 0
	if response {
		r = 1
	}
	n := C.enc1(out, C.int(r), C.uint32_t(uid), C.unsigned(op), (*C.uchar)(unsafe.Add(unsafe.Pointer(p), 1)),
		C.size_t(len(payload)), C.size_t(split))
	if n == 0 {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(out), C.int(n))
}

// Message is what Decode found.
type Message struct {
	Response bool
	UID      uint32
	Op       uint8
	Payload  []byte
	Used     int
}

// Decode is dcw_decode of a copy of b.
func Decode(b []byte, want int) (Status, Message) {
	cb := (*C.uchar)(C.CBytes(append([]byte{0}, b...)))
	defer C.free(unsafe.Pointer(cb))
	var m C.struct_dcw_msg
	s := Status(C.dcw_decode((*C.uchar)(unsafe.Add(unsafe.Pointer(cb), 1)), C.size_t(len(b)), C.int(want), &m))
	if s != Done {
		return s, Message{}
	}
	return s, Message{Response: m.response != 0, UID: uint32(m.uid), Op: uint8(m.op),
		Payload: C.GoBytes(unsafe.Pointer(m.payload), C.int(m.len)), Used: int(m.used)}
}
