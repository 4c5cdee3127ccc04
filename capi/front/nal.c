/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libnal.so.1: the NAL_* functions written by hand (api.tab, form c); the
 * trampolines of the forms call, new and free are generated (nal_gen.c).
 * The codec functions are plain C (they need no engine).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#define DCF_LIBNAL 1	/* front.h: the loader's state read in place */
#include "front.h"

DCF_PUBLIC int NAL_SELECTOR_select(NAL_SELECTOR *s, unsigned long usec, int use)
{
	const struct dcf_engine *e = dcf_e();
	int err = 0, n;
	dcf_ref r;

	if (!e || !(r = dcf_ref_of(s)))
		return -1;
	n = e->NAL_SELECTOR_select(r, usec, use, &err);
	if (err)
		errno = err;
	return n;
}

/* The connection's buffer handles, embedded in its handle (not registered:
 * NAL_BUFFER_free ignores them), pointed at the engine's buffers. */
static NAL_BUFFER *conn_buf(const NAL_CONNECTION *cc, int send)
{
	NAL_CONNECTION *c = (NAL_CONNECTION *)cc;
	const struct dcf_engine *e = dcf_e();
	NAL_BUFFER *b;
	dcf_ref r, br;

	if (!e || !(r = dcf_ref_of(c)))
		return NULL;
	br = send ? e->NAL_CONNECTION_get_send(r) : e->NAL_CONNECTION_get_read(r);
	if (!br)
		return NULL;
	b = send ? &c->sd : &c->rd;
	dcf_set(&b->o, br);
	return b;
}

DCF_PUBLIC NAL_BUFFER *NAL_CONNECTION_get_read(NAL_CONNECTION *c) { return conn_buf(c, 0); }
DCF_PUBLIC NAL_BUFFER *NAL_CONNECTION_get_send(NAL_CONNECTION *c) { return conn_buf(c, 1); }
DCF_PUBLIC const NAL_BUFFER *NAL_CONNECTION_get_read_c(const NAL_CONNECTION *c) { return conn_buf(c, 0); }
DCF_PUBLIC const NAL_BUFFER *NAL_CONNECTION_get_send_c(const NAL_CONNECTION *c) { return conn_buf(c, 1); }

/* Addresses and buffers hold no descriptor: their engine objects are
 * released in batches (dcf_free_later), a crossing per many frees. */
DCF_PUBLIC void NAL_ADDRESS_free(NAL_ADDRESS *a)
{
	NAL_ADDRESS h;

	if (!dcf_hfree(a, DCF_K_ADDRESS, &h, sizeof h))
		return;
	if (h.o.ref && h.o.gen == dcf_gen())
		dcf_free_later(DCF_K_ADDRESS, h.o.ref, 0);
}

DCF_PUBLIC void NAL_BUFFER_free(NAL_BUFFER *b)
{
	NAL_BUFFER h;

	if (!dcf_hfree(b, DCF_K_BUFFER, &h, sizeof h))
		return;
	if (h.o.ref && h.o.gen == dcf_gen())
		dcf_free_later(DCF_K_BUFFER, h.o.ref, h.size);
	free(h.mem);	/* storage the engine never took over */
}

/* The first use of a fresh address or buffer is usually create or set_size:
 * the engine makes the object and does that in one crossing. */
DCF_PUBLIC int NAL_ADDRESS_create(NAL_ADDRESS *a, const char *s, unsigned int size)
{
	const struct dcf_engine *e = dcf_e();
	dcf_ref r;

	if (!e || !a || !s)
		return 0;
	if (dcf_fresh(&a->o)) {
		int ok;
		r = NULL;
		ok = e->NAL_ADDRESS_new_create(s, size, &r);
		if (!r)
			return 0;
		if (dcf_install(&a->o, r))
			return ok;
		e->NAL_ADDRESS_free(r);	/* another thread made one first */
	}
	if (!(r = dcf_ref_of(a)))
		return 0;
	return e->NAL_ADDRESS_create(r, s, size);
}

/*
 * A standalone buffer without an engine object yet keeps the storage it is
 * given in its handle (malloc'd here, no crossing; handed over to the
 * engine with the object, dcf_make_buffer), as the engine's SetSize would
 * set it: a size above DCF_BUFFER_MAX fails and changes nothing, the same
 * size keeps it, another size replaces it (size 0: none), an allocation
 * failure leaves size 0.  Every other use goes to the engine.
 */
static int pending_set_size(NAL_BUFFER *b, unsigned int size)
{
	void *old;

	if (size > DCF_BUFFER_MAX)
		return 0;
	if (size == b->size)
		return 1;
	old = b->mem;
	b->mem = NULL;
	b->size = 0;
	free(old);
	if (size && !(b->mem = malloc(size)))
		return 0;
	b->size = size;
	return 1;
}

DCF_PUBLIC int NAL_BUFFER_set_size(NAL_BUFFER *b, unsigned int size)
{
	const struct dcf_engine *e = dcf_e();
	int ok;
	dcf_ref r;

	if (!e || !b)
		return 0;
	if (dcf_fresh(&b->o) && b->o.make) {
		dcf_shared_get()->lock();
		if (!b->o.ref) {
			ok = pending_set_size(b, size);
			dcf_shared_get()->unlock();
			return ok;
		}
		dcf_shared_get()->unlock();
	}
	if (!(r = dcf_ref_of(b)))
		return 0;
	ok = e->NAL_BUFFER_set_size(r, size);
	if (ok)
		b->size = size;
	return ok;
}

/* Codec: big-endian, cursor style, all-or-nothing. */
static int take(const unsigned char **bin, unsigned int *len, unsigned int n)
{
	return bin && *bin && len && *len >= n;
}

DCF_PUBLIC int NAL_decode_uint32(const unsigned char **bin, unsigned int *len, unsigned long *val)
{
	const unsigned char *p;

	if (!take(bin, len, 4) || !val)
		return 0;
	p = *bin;
	*val = ((unsigned long)p[0] << 24) | ((unsigned long)p[1] << 16) |
		((unsigned long)p[2] << 8) | (unsigned long)p[3];
	*bin += 4;
	*len -= 4;
	return 1;
}

DCF_PUBLIC int NAL_decode_uint16(const unsigned char **bin, unsigned int *len, unsigned int *val)
{
	if (!take(bin, len, 2) || !val)
		return 0;
	*val = ((unsigned int)(*bin)[0] << 8) | (unsigned int)(*bin)[1];
	*bin += 2;
	*len -= 2;
	return 1;
}

DCF_PUBLIC int NAL_decode_char(const unsigned char **bin, unsigned int *len, unsigned char *val)
{
	if (!take(bin, len, 1) || !val)
		return 0;
	*val = **bin;
	*bin += 1;
	*len -= 1;
	return 1;
}

DCF_PUBLIC int NAL_decode_bin(const unsigned char **bin, unsigned int *len,
		unsigned char *val, unsigned int val_len)
{
	if (val_len == 0)
		return 1;
	if (!take(bin, len, val_len) || !val)
		return 0;
	memcpy(val, *bin, val_len);
	*bin += val_len;
	*len -= val_len;
	return 1;
}

static int room(unsigned char **bin, unsigned int *len, unsigned int n)
{
	return bin && *bin && len && *len >= n;
}

DCF_PUBLIC int NAL_encode_uint32(unsigned char **bin, unsigned int *len, const unsigned long val)
{
	if (!room(bin, len, 4))
		return 0;
	(*bin)[0] = (unsigned char)(val >> 24);
	(*bin)[1] = (unsigned char)(val >> 16);
	(*bin)[2] = (unsigned char)(val >> 8);
	(*bin)[3] = (unsigned char)val;
	*bin += 4;
	*len -= 4;
	return 1;
}

DCF_PUBLIC int NAL_encode_uint16(unsigned char **bin, unsigned int *len, const unsigned int val)
{
	if (!room(bin, len, 2))
		return 0;
	(*bin)[0] = (unsigned char)(val >> 8);
	(*bin)[1] = (unsigned char)val;
	*bin += 2;
	*len -= 2;
	return 1;
}

DCF_PUBLIC int NAL_encode_char(unsigned char **bin, unsigned int *len, const unsigned char val)
{
	if (!room(bin, len, 1))
		return 0;
	**bin = val;
	*bin += 1;
	*len -= 1;
	return 1;
}

DCF_PUBLIC int NAL_encode_bin(unsigned char **bin, unsigned int *len,
		const unsigned char *val, const unsigned int val_len)
{
	if (val_len == 0)
		return 1;
	if (!room(bin, len, val_len) || !val)
		return 0;
	memcpy(*bin, val, val_len);
	*bin += val_len;
	*len -= val_len;
	return 1;
}
