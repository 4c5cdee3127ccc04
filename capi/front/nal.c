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
	dcf_astr_put(h.pend);
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

/*
 * The address strings the engine last created with an outcome that is the
 * same every time (its new_create said 2: no host name to look up), in a
 * table indexed by a hash of the string (a newer string takes its slot),
 * under the object lock.  A fresh handle created with one of them, with a
 * default buffer size the engine accepts, succeeds at once and keeps the
 * string: its engine object is made and created with it when first needed
 * (dcf_make_address), as it would have been made now.  So a program making
 * an address per connection crosses into the engine once per connection,
 * not twice.
 */
#define ASTR_SLOTS 64
/* the engine's longest address string (goimpl/nal AddressMaxStrLen): a
 * longer one is never in the table, and is not read to its end here */
#define ASTR_MAX 255
static struct dcf_astr *astr_tab[ASTR_SLOTS];

/* The length of s (at most ASTR_MAX; longer: -1) and its hash. */
static long astr_hash(const char *s, unsigned int *h)
{
	unsigned int x = 2166136261u;
	long n;

	for (n = 0; s[n]; n++) {
		if (n == ASTR_MAX)
			return -1;
		x = (x ^ (unsigned char)s[n]) * 16777619u;
	}
	*h = x;
	return n;
}

/*
 * A fresh handle (no engine object, no string) gets the one it is to have
 * (under the object lock, as dcf_make_address makes one): the engine
 * object r, or else the string of the table that equals s (n bytes, hash
 * h) with size.  1 if it did; 0 if the handle is fresh no longer (r stays
 * the caller's) or s is not in the table.
 */
static int addr_give(NAL_ADDRESS *a, dcf_ref r, const char *s, long n, unsigned int h, unsigned int size)
{
	struct dcf_astr *p;
	int ok = 0;

	dcf_shared_get()->lock();
	if (!a->o.ref && !a->pend) {
		if (r) {
			a->o.gen = dcf_gen();
			__atomic_store_n(&a->o.ref, r, __ATOMIC_RELEASE);
			ok = 1;
		} else if ((p = astr_tab[h % ASTR_SLOTS]) && p->len == (unsigned long)n &&
				memcmp(p->s, s, (size_t)n) == 0) {
			__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
			a->pend = p;
			a->psize = size;
			ok = 1;
		}
	}
	dcf_shared_get()->unlock();
	return ok;
}

/* Remember s (n bytes, hash h), which the engine created with the same
 * outcome every time. */
static void astr_keep(const char *s, long n, unsigned int h)
{
	struct dcf_astr *p, *old;

	if (!(p = malloc(sizeof *p + (size_t)n + 1)))
		return;
	p->refs = 1;
	p->len = (unsigned int)n;
	memcpy(p->s, s, (size_t)n + 1);
	dcf_shared_get()->lock();
	old = astr_tab[h % ASTR_SLOTS];
	astr_tab[h % ASTR_SLOTS] = p;
	dcf_shared_get()->unlock();
	dcf_astr_put(old);
}

/* The first use of a fresh address or buffer is usually create or set_size:
 * the engine makes the object and does that in one crossing, or none for
 * for an address string the engine created before (addr_give). */
DCF_PUBLIC int NAL_ADDRESS_create(NAL_ADDRESS *a, const char *s, unsigned int size)
{
	const struct dcf_engine *e = dcf_e();
	unsigned int h = 0;
	long n;
	dcf_ref r;

	if (!e || !a || !s)
		return 0;
	if (dcf_fresh(&a->o) && !__atomic_load_n(&a->pend, __ATOMIC_ACQUIRE)) {
		int ok;
		n = astr_hash(s, &h);
		if (n >= 0 && size <= DCF_BUFFER_MAX && addr_give(a, NULL, s, n, h, size))
			return 1;
		r = NULL;
		ok = e->NAL_ADDRESS_new_create(s, size, &r);
		if (!r)
			return 0;
		if (addr_give(a, r, NULL, 0, 0, 0)) {
			if (ok == 2 && n >= 0)
				astr_keep(s, n, h);
			return ok != 0;
		}
		e->NAL_ADDRESS_free(r);	/* another thread was first */
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
 * size keeps it and its contents, another size replaces it, empty (size 0:
 * none), an allocation failure leaves size 0.  NAL_BUFFER_write appends to
 * it as the engine's Write would.  Every other use goes to the engine.
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
	b->used = 0;
	free(old);
	if (size && !(b->mem = malloc(size)))
		return 0;
	b->size = size;
	return 1;
}

/* 1 with the object lock held if b is a standalone buffer without an
 * engine object (its storage the handle's), else 0. */
static int pending_lock(NAL_BUFFER *b)
{
	if (!dcf_fresh(&b->o) || !b->o.make)
		return 0;
	dcf_shared_get()->lock();
	if (!b->o.ref)
		return 1;
	dcf_shared_get()->unlock();
	return 0;
}

DCF_PUBLIC int NAL_BUFFER_set_size(NAL_BUFFER *b, unsigned int size)
{
	const struct dcf_engine *e = dcf_e();
	int ok;
	dcf_ref r;

	if (!e || !b)
		return 0;
	if (pending_lock(b)) {
		ok = pending_set_size(b, size);
		dcf_shared_get()->unlock();
		return ok;
	}
	if (!(r = dcf_ref_of(b)))
		return 0;
	ok = e->NAL_BUFFER_set_size(r, size);
	if (ok)
		b->size = size;
	return ok;
}

DCF_PUBLIC unsigned int NAL_BUFFER_write(NAL_BUFFER *b, const unsigned char *p, unsigned int n)
{
	const struct dcf_engine *e = dcf_e();
	unsigned int k;
	dcf_ref r;

	if (!e || !b)
		return 0;
	if (pending_lock(b)) {
		k = 0;
		if (p) {
			k = b->size - b->used < n ? b->size - b->used : n;
			if (k)
				memcpy((unsigned char *)b->mem + b->used, p, k);
			b->used += k;
		}
		dcf_shared_get()->unlock();
		return k;
	}
	if (!(r = dcf_ref_of(b)) || !p)
		return 0;
	return e->NAL_BUFFER_write(r, p, n);
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
