/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libnal.so.1: the NAL_* functions.  Object functions are trampolines into
 * the engine through the front's handles; the codec functions are plain C
 * (they need no engine).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "front.h"

/* Declarations for the locals below: an engine e and, for handle h, its
 * reference r in this generation; FAIL(v) returns v if either is missing. */
#define ENG(v) const struct dcf_engine *e = dcf_e(); if (!e) return v
#define REF(r, h, v) dcf_ref r = (h) ? dcf_cur(&(h)->o) : NULL; if (!r) return v
#define NOTHING

DCF_PUBLIC void NAL_config_set_nagle(int enabled)
{
	ENG(NOTHING);
	e->NAL_config_set_nagle(enabled);
}

/* new/free of the four plain kinds.  A free ignores (without reading it) a
 * pointer that is not a live handle of its kind. */
#define PLAIN(T, K, CTOR, KIND) \
DCF_PUBLIC T *CTOR(void) \
{ \
	T *h; dcf_ref r; \
	ENG(NULL); \
	h = calloc(1, sizeof *h); \
	if (!h) return NULL; \
	r = e->CTOR(); \
	if (!r) { free(h); return NULL; } \
	dcf_set(&h->o, r); \
	if (!dcf_track(&h->o, K)) { e->KIND##_free(r); free(h); return NULL; } \
	return h; \
}
#define FREE(T, K, KIND) \
DCF_PUBLIC void KIND##_free(T *h) \
{ \
	if (!dcf_forget(h, K)) return; \
	if (h->o.ref && h->o.gen == dcf_gen()) { \
		const struct dcf_engine *e = dcf_e(); \
		if (e) e->KIND##_free(h->o.ref); \
	} \
	free(h); \
}

PLAIN(NAL_ADDRESS, DCF_K_ADDRESS, NAL_ADDRESS_new, NAL_ADDRESS)
FREE(NAL_ADDRESS, DCF_K_ADDRESS, NAL_ADDRESS)
PLAIN(NAL_SELECTOR, DCF_K_SELECTOR, NAL_SELECTOR_new, NAL_SELECTOR)
PLAIN(NAL_SELECTOR, DCF_K_SELECTOR, NAL_SELECTOR_new_fdselect, NAL_SELECTOR)
PLAIN(NAL_SELECTOR, DCF_K_SELECTOR, NAL_SELECTOR_new_fdpoll, NAL_SELECTOR)
FREE(NAL_SELECTOR, DCF_K_SELECTOR, NAL_SELECTOR)
PLAIN(NAL_LISTENER, DCF_K_LISTENER, NAL_LISTENER_new, NAL_LISTENER)
FREE(NAL_LISTENER, DCF_K_LISTENER, NAL_LISTENER)
PLAIN(NAL_BUFFER, DCF_K_BUFFER, NAL_BUFFER_new, NAL_BUFFER)

/* Trampolines: T1 one handle argument, V for void results. */
#define V1(KIND, FN, T) \
DCF_PUBLIC void FN(T *h) { ENG(NOTHING); REF(r, h, NOTHING); e->FN(r); }
#define R1(RT, FN, T, v) \
DCF_PUBLIC RT FN(T *h) { ENG(v); REF(r, h, v); return e->FN(r); }

V1(NAL_ADDRESS, NAL_ADDRESS_reset, NAL_ADDRESS)
R1(unsigned int, NAL_ADDRESS_get_def_buffer_size, const NAL_ADDRESS, 0)
R1(int, NAL_ADDRESS_can_connect, const NAL_ADDRESS, 0)
R1(int, NAL_ADDRESS_can_listen, const NAL_ADDRESS, 0)

DCF_PUBLIC int NAL_ADDRESS_create(NAL_ADDRESS *a, const char *s, unsigned int size)
{
	ENG(0);
	REF(r, a, 0);
	if (!s)
		return 0;
	return e->NAL_ADDRESS_create(r, s, size);
}

DCF_PUBLIC int NAL_ADDRESS_set_def_buffer_size(NAL_ADDRESS *a, unsigned int size)
{
	ENG(0);
	REF(r, a, 0);
	return e->NAL_ADDRESS_set_def_buffer_size(r, size);
}

V1(NAL_SELECTOR, NAL_SELECTOR_reset, NAL_SELECTOR)
R1(unsigned int, NAL_SELECTOR_num_objects, const NAL_SELECTOR, 0)

DCF_PUBLIC int NAL_SELECTOR_select(NAL_SELECTOR *s, unsigned long usec, int use)
{
	int err = 0, n;

	ENG(-1);
	REF(r, s, -1);
	n = e->NAL_SELECTOR_select(r, usec, use, &err);
	if (err)
		errno = err;
	return n;
}

V1(NAL_LISTENER, NAL_LISTENER_reset, NAL_LISTENER)
V1(NAL_LISTENER, NAL_LISTENER_del_from_selector, NAL_LISTENER)
R1(int, NAL_LISTENER_finished, const NAL_LISTENER, 0)

DCF_PUBLIC int NAL_LISTENER_create(NAL_LISTENER *l, const NAL_ADDRESS *a)
{
	ENG(0);
	REF(r, l, 0);
	REF(ra, a, 0);
	return e->NAL_LISTENER_create(r, ra);
}

DCF_PUBLIC int NAL_LISTENER_add_to_selector(NAL_LISTENER *l, NAL_SELECTOR *s)
{
	ENG(0);
	REF(r, l, 0);
	REF(rs, s, 0);
	return e->NAL_LISTENER_add_to_selector(r, rs);
}

DCF_PUBLIC int NAL_LISTENER_set_fs_owner(NAL_LISTENER *l, const char *o, const char *g)
{
	ENG(0);
	REF(r, l, 0);
	return e->NAL_LISTENER_set_fs_owner(r, o, g);
}

DCF_PUBLIC int NAL_LISTENER_set_fs_perms(NAL_LISTENER *l, const char *octal)
{
	ENG(0);
	REF(r, l, 0);
	if (!octal)
		return 0;
	return e->NAL_LISTENER_set_fs_perms(r, octal);
}

/* Connections carry their two buffer handles. */
DCF_PUBLIC NAL_CONNECTION *NAL_CONNECTION_new(void)
{
	NAL_CONNECTION *c;
	dcf_ref r;

	ENG(NULL);
	c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	r = e->NAL_CONNECTION_new();
	if (!r) {
		free(c);
		return NULL;
	}
	dcf_set(&c->o, r);
	c->rd.embedded = c->sd.embedded = 1;
	if (!dcf_track(&c->o, DCF_K_CONNECTION)) {
		e->NAL_CONNECTION_free(r);
		free(c);
		return NULL;
	}
	return c;
}

DCF_PUBLIC void NAL_CONNECTION_free(NAL_CONNECTION *c)
{
	if (!dcf_forget(c, DCF_K_CONNECTION))
		return;
	if (c->o.ref && c->o.gen == dcf_gen()) {
		const struct dcf_engine *e = dcf_e();
		if (e)
			e->NAL_CONNECTION_free(c->o.ref);
	}
	free(c);
}

V1(NAL_CONNECTION, NAL_CONNECTION_reset, NAL_CONNECTION)
V1(NAL_CONNECTION, NAL_CONNECTION_del_from_selector, NAL_CONNECTION)
R1(int, NAL_CONNECTION_io, NAL_CONNECTION, 0)
R1(int, NAL_CONNECTION_is_established, const NAL_CONNECTION, 0)

DCF_PUBLIC int NAL_CONNECTION_create(NAL_CONNECTION *c, const NAL_ADDRESS *a)
{
	ENG(0);
	REF(r, c, 0);
	REF(ra, a, 0);
	return e->NAL_CONNECTION_create(r, ra);
}

DCF_PUBLIC int NAL_CONNECTION_accept(NAL_CONNECTION *c, NAL_LISTENER *l)
{
	ENG(0);
	REF(r, c, 0);
	REF(rl, l, 0);
	return e->NAL_CONNECTION_accept(r, rl);
}

DCF_PUBLIC int NAL_CONNECTION_set_size(NAL_CONNECTION *c, unsigned int size)
{
	ENG(0);
	REF(r, c, 0);
	return e->NAL_CONNECTION_set_size(r, size);
}

DCF_PUBLIC int NAL_CONNECTION_add_to_selector(NAL_CONNECTION *c, NAL_SELECTOR *s)
{
	ENG(0);
	REF(r, c, 0);
	REF(rs, s, 0);
	return e->NAL_CONNECTION_add_to_selector(r, rs);
}

DCF_PUBLIC int NAL_CONNECTION_create_pair(NAL_CONNECTION *c1, NAL_CONNECTION *c2,
		unsigned int size)
{
	ENG(0);
	REF(r1, c1, 0);
	REF(r2, c2, 0);
	return e->NAL_CONNECTION_create_pair(r1, r2, size);
}

static NAL_BUFFER *conn_buf(const NAL_CONNECTION *cc, int send)
{
	NAL_CONNECTION *c = (NAL_CONNECTION *)cc;
	NAL_BUFFER *b;
	dcf_ref br;

	ENG(NULL);
	REF(r, c, NULL);
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

/* Buffers.  A connection's buffer handle is not registered (it is freed
 * with its connection), so NAL_BUFFER_free ignores it. */
FREE(NAL_BUFFER, DCF_K_BUFFER, NAL_BUFFER)

V1(NAL_BUFFER, NAL_BUFFER_reset, NAL_BUFFER)
R1(int, NAL_BUFFER_empty, const NAL_BUFFER, 0)
R1(int, NAL_BUFFER_full, const NAL_BUFFER, 0)
R1(int, NAL_BUFFER_notempty, const NAL_BUFFER, 0)
R1(int, NAL_BUFFER_notfull, const NAL_BUFFER, 0)
R1(unsigned int, NAL_BUFFER_used, const NAL_BUFFER, 0)
R1(unsigned int, NAL_BUFFER_unused, const NAL_BUFFER, 0)
R1(unsigned int, NAL_BUFFER_size, const NAL_BUFFER, 0)
R1(const unsigned char *, NAL_BUFFER_data, const NAL_BUFFER, NULL)
R1(unsigned char *, NAL_BUFFER_write_ptr, NAL_BUFFER, NULL)

DCF_PUBLIC int NAL_BUFFER_set_size(NAL_BUFFER *b, unsigned int size)
{
	ENG(0);
	REF(r, b, 0);
	return e->NAL_BUFFER_set_size(r, size);
}

DCF_PUBLIC unsigned int NAL_BUFFER_write(NAL_BUFFER *b, const unsigned char *p, unsigned int n)
{
	ENG(0);
	REF(r, b, 0);
	if (!p)
		return 0;
	return e->NAL_BUFFER_write(r, p, n);
}

DCF_PUBLIC unsigned int NAL_BUFFER_read(NAL_BUFFER *b, unsigned char *p, unsigned int n)
{
	ENG(0);
	REF(r, b, 0);
	return e->NAL_BUFFER_read(r, p, n);
}

DCF_PUBLIC unsigned int NAL_BUFFER_transfer(NAL_BUFFER *d, NAL_BUFFER *s, unsigned int max)
{
	ENG(0);
	REF(rd, d, 0);
	REF(rs, s, 0);
	return e->NAL_BUFFER_transfer(rd, rs, max);
}

DCF_PUBLIC void NAL_BUFFER_wrote(NAL_BUFFER *b, unsigned int n)
{
	ENG(NOTHING);
	REF(r, b, NOTHING);
	e->NAL_BUFFER_wrote(r, n);
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
