/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fast path's frame codec (wire.h).  The rules are goimpl/proto's
 * (ParseFrame, Assembler, AppendMessage), in the same order, so that a
 * malformed stream is refused as soon as the bad byte is visible;
 * capi/wiretest compares the two on generated and fuzzed frames.
 */
#include <string.h>
#include "wire.h"

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

DCF_WIRE_API size_t dcw_encode(unsigned char *out, int response, uint32_t uid, unsigned op,
		const struct dcw_part *parts, int nparts)
{
	size_t total = 0, done = 0, o = 0;
	int i = 0;
	size_t at = 0;	/* offset in parts[i] */

	for (i = 0; i < nparts; i++)
		total += parts[i].n;
	if (total > DCW_MAX_PAYLOAD || op > DCW_OP_MAX_KNOWN)
		return 0;
	i = 0;
	for (;;) {
		size_t n = total - done, k;
		int last = n <= DCW_MAX_FRAME_DATA;

		if (!last)
			n = DCW_MAX_FRAME_DATA;
		put32(out + o + DCW_OFF_LEVEL, DCW_PROTO_LEVEL);
		out[o + DCW_OFF_IS_RESPONSE] = response ? 1 : 0;
		put32(out + o + DCW_OFF_UID, uid);
		out[o + DCW_OFF_OP_CLASS] = 0;
		out[o + DCW_OFF_OP] = (unsigned char)op;
		out[o + DCW_OFF_COMPLETE] = last ? 1 : 0;
		out[o + DCW_OFF_DATA_LEN] = (unsigned char)(n >> 8);
		out[o + DCW_OFF_DATA_LEN + 1] = (unsigned char)n;
		o += DCW_HEADER_SIZE;
		for (k = 0; k < n;) {
			size_t c = parts[i].n - at;

			if (c == 0) {
				i++;
				at = 0;
				continue;
			}
			if (c > n - k)
				c = n - k;
			memcpy(out + o, parts[i].p + at, c);
			o += c;
			k += c;
			at += c;
		}
		done += n;
		if (last)
			return o;
	}
}

/* One frame at b[0..n): its length (header and data), 0 when incomplete,
 * -1 when corrupt (goimpl/proto ParseFrame, check for check). */
static long frame(const unsigned char *b, size_t n)
{
	size_t len;

	if (n < 5) {
		if (n >= 4 && get32(b) >> 16 != DCW_PROTO_VERSION)
			return -1;
		return 0;
	}
	if (get32(b + DCW_OFF_LEVEL) >> 16 != DCW_PROTO_VERSION || b[DCW_OFF_IS_RESPONSE] > 1)
		return -1;
	if (n <= DCW_OFF_OP_CLASS)
		return 0;
	if (b[DCW_OFF_OP_CLASS] != 0)
		return -1;
	if (n <= DCW_OFF_OP)
		return 0;
	if (b[DCW_OFF_OP] > DCW_OP_MAX_KNOWN)
		return -1;
	if (n <= DCW_OFF_COMPLETE)
		return 0;
	if (b[DCW_OFF_COMPLETE] > 1)
		return -1;
	if (n < DCW_HEADER_SIZE)
		return 0;
	len = (size_t)b[DCW_OFF_DATA_LEN] << 8 | b[DCW_OFF_DATA_LEN + 1];
	if (len > DCW_MAX_FRAME_DATA || (!b[DCW_OFF_COMPLETE] && len != DCW_MAX_FRAME_DATA))
		return -1;
	if (n < DCW_HEADER_SIZE + len)
		return 0;
	return (long)(DCW_HEADER_SIZE + len);
}

DCF_WIRE_API int dcw_decode(unsigned char *b, size_t n, int want, struct dcw_msg *m)
{
	size_t at = 0, total = 0;
	int frames = 0;

	for (;;) {
		const unsigned char *f = b + at;
		long fl = frame(f, n - at);
		int resp;

		if (fl <= 0)
			return fl < 0 ? DCW_CORRUPT : DCW_INCOMPLETE;
		resp = f[DCW_OFF_IS_RESPONSE];
		if ((want == DCW_WANT_REQUESTS && resp) || (want == DCW_WANT_RESPONSES && !resp))
			return DCW_CORRUPT;
		if (frames == 0) {
			m->response = resp;
			m->uid = get32(f + DCW_OFF_UID);
			m->op = f[DCW_OFF_OP];
		} else if (get32(f + DCW_OFF_UID) != m->uid || f[DCW_OFF_OP] != m->op || resp != m->response) {
			return DCW_CORRUPT;
		}
		total += (size_t)fl - DCW_HEADER_SIZE;
		if (total > DCW_MAX_PAYLOAD)
			return DCW_CORRUPT;
		frames++;
		at += (size_t)fl;
		if (f[DCW_OFF_COMPLETE])
			break;
	}
	m->used = at;
	m->len = total;
	if (frames == 1) {
		m->payload = b + DCW_HEADER_SIZE;
		return DCW_DONE;
	}
	/* gather the frames' data behind the first header */
	{
		size_t src = 0, dst = DCW_HEADER_SIZE;

		while (src < at) {
			size_t dl = (size_t)b[src + DCW_OFF_DATA_LEN] << 8 | b[src + DCW_OFF_DATA_LEN + 1];

			memmove(b + dst, b + src + DCW_HEADER_SIZE, dl);
			dst += dl;
			src += DCW_HEADER_SIZE + dl;
		}
	}
	m->payload = b + DCW_HEADER_SIZE;
	return DCW_DONE;
}
