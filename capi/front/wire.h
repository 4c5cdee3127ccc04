/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The frame codec of the C front's fast path (dc_client.c): a second
 * encoder and decoder of the distcache frame, beside goimpl/proto, kept
 * because an operation on an established plain link must not cross into
 * the Go engine (capi/README.md, "The fast path").  Its constants come
 * from goimpl/proto (wire_gen.h, generated); capi/wiretest checks that it
 * encodes and decodes every frame exactly as goimpl/proto does.
 */
#ifndef DCF_WIRE_H
#define DCF_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include "wire_gen.h"

/* private to the library (capi/wiretest compiles wire.c into its test) */
#ifndef DCF_WIRE_API
#define DCF_WIRE_API __attribute__((visibility("hidden")))
#endif

/* One piece of a payload (an ADD's is its prefix, the id and the data). */
struct dcw_part {
	const unsigned char *p;
	size_t n;
};

/* A decoded message: payload points into the decoded buffer. */
struct dcw_msg {
	int response;
	uint32_t uid;
	unsigned op;
	const unsigned char *payload;
	size_t len;
	size_t used;		/* bytes of the buffer the message took */
};

enum { DCW_INCOMPLETE = 0, DCW_DONE = 1, DCW_CORRUPT = -1 };
/* which frames dcw_decode accepts (as proto.Direction) */
enum { DCW_WANT_ANY = 0, DCW_WANT_REQUESTS = 1, DCW_WANT_RESPONSES = 2 };

/* Writes the frames of a message whose payload is the parts, in order, to
 * out (room for DCW_MAX_MESSAGE bytes); returns the bytes written, 0 when
 * the payload is over DCW_MAX_PAYLOAD or op is unknown. */
DCF_WIRE_API size_t dcw_encode(unsigned char *out, int response, uint32_t uid, unsigned op,
		const struct dcw_part *parts, int nparts);

/* Decodes the message at the head of b[0..n): DCW_DONE (m filled; a
 * payload of several frames is gathered in place, so b is changed),
 * DCW_INCOMPLETE (more bytes needed, b untouched) or DCW_CORRUPT (the
 * stream is not valid distcache traffic). */
DCF_WIRE_API int dcw_decode(unsigned char *b, size_t n, int want, struct dcw_msg *m);

#endif
