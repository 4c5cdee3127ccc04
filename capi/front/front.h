/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The front's handle structs (what C programs hold as NAL_ADDRESS *, DC_PLUG *,
 * ...; DC_CTX's is in dc_client.c) and the helpers every trampoline uses.  A handle lives at a stable
 * address for its whole life and holds the engine reference of the process
 * generation it belongs to.  Private to the front.
 */
#ifndef DCF_FRONT_H
#define DCF_FRONT_H

#include <stdlib.h>
#include <string.h>
#include <libnal/nal.h>
#include "engine.h"

/* The kinds of tracked handles, DCF_K_* (api_gen.h, from api.tab): DC_CTX
 * has no engine object to snapshot, but is registered like the others. */

struct dcf_obj {
	dcf_ref ref;
	unsigned long gen;
	int kind;			/* 0: not registered */
	/* a libnal handle made without its engine object (dcf_make): the
	 * offsets in struct dcf_engine of the engine functions that make
	 * and free it; 0 for the others */
	unsigned int make, unmake;
};

/* An address string whose create the engine says always succeeds the same
 * way (no host name to look up; nal.c keeps the recent ones): shared by
 * the address handles created with it that have no engine object yet,
 * freed when the last of them (and nal.c's table) lets go of it. */
struct dcf_astr {
	int refs;		/* atomic */
	unsigned int len;
	char s[];		/* NUL-terminated */
};

static inline void dcf_astr_put(struct dcf_astr *p)
{
	if (p && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(p);
}

struct st_NAL_ADDRESS {
	struct dcf_obj o;
	/* created without the engine (NAL_ADDRESS_create): the string and
	 * default buffer size its engine object is to be created with when it
	 * is made (dcf_make), then NULL */
	struct dcf_astr *pend;
	unsigned int psize;
};
struct st_NAL_SELECTOR { struct dcf_obj o; };
struct st_NAL_LISTENER { struct dcf_obj o; };
/* A connection's two buffer handles are embedded in its handle, not
 * registered: freed with it, never alone. */
struct st_NAL_BUFFER {
	struct dcf_obj o;
	unsigned int size;	/* as last set through the handle */
	/* a standalone buffer sized before it had an engine object: its
	 * storage (size bytes, malloc'd by NAL_BUFFER_set_size, the first used
	 * of them written by NAL_BUFFER_write), the front's until the engine
	 * object takes it over (dcf_make), then NULL */
	void *mem;
	unsigned int used;
};
struct st_NAL_CONNECTION {
	struct dcf_obj o;
	NAL_BUFFER rd, sd;	/* get_read/get_send handles */
};
/* A plug and a server's client keep their connection to release its handle
 * when the engine frees the connection with them (unless flags say not). */
struct st_DC_PLUG {
	struct dcf_obj o;
	NAL_CONNECTION *conn;
	unsigned int flags;
};
struct st_DC_SERVER { struct dcf_obj o; };
struct st_DC_CLIENT {
	struct dcf_obj o;
	NAL_CONNECTION *conn;
	unsigned int flags;
};

#ifdef DCF_LIBNAL
/* In libnal, the loader's state is read in place (loader.c): no call. */
DCF_HIDDEN extern const struct dcf_engine *dcf_live_engine;
DCF_HIDDEN extern volatile unsigned long dcf_generation;
#endif

/* The engine of this generation (loading it), or NULL. */
static inline const struct dcf_engine *dcf_e(void)
{
#ifdef DCF_LIBNAL
	const struct dcf_engine *e = __atomic_load_n(&dcf_live_engine, __ATOMIC_ACQUIRE);

	if (e)
		return e;
#endif
	return dcf_shared_get()->engine();
}

static inline unsigned long dcf_gen(void)
{
#ifdef DCF_LIBNAL
	return dcf_generation;
#else
	return *dcf_shared_get()->generation;
#endif
}

DCF_HIDDEN void dcf_stale(void);

/* A zeroed handle.  Not calloc(): glibc's calloc bypasses the per-thread
 * cache that malloc and free use, which doubles the cost of a new/free pair;
 * the empty asm keeps the compiler from folding malloc + memset back into
 * calloc.  Above 64 bytes the size is hidden from the compiler too: for
 * such a known size it inlines the memset as "rep stos", whose start-up
 * alone cost a third of a NAL_CONNECTION new/free pair (128 bytes), where
 * libc's memset takes a few vector stores. */
static inline void *dcf_alloc(size_t n)
{
	void *p = malloc(n);

	__asm__ volatile("" : "+r"(p));
	if (p && n <= 64)
		memset(p, 0, n);	/* a few stores, inline */
	else if (p) {
		__asm__ volatile("" : "+r"(n));
		memset(p, 0, n);
	}
	return p;
}

/* In libnal, for its handles: a zeroed registered handle of n bytes, or
 * NULL; and its release: 0 if p is not a live handle of this kind, else 1
 * with the handle's n bytes copied to copy (loader.c). */
DCF_HIDDEN void *dcf_hnew(size_t n, int kind);
DCF_HIDDEN int dcf_hfree(const void *p, int kind, void *copy, size_t n);

/* Give a fresh handle the engine object r; 0 if another thread was first
 * (the caller frees r). */
static inline int dcf_install(struct dcf_obj *o, dcf_ref r)
{
	dcf_ref old = NULL;

	o->gen = dcf_gen();
	return __atomic_compare_exchange_n(&o->ref, &old, r, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* A handle without an engine object yet. */
static inline int dcf_fresh(const struct dcf_obj *o)
{
	return !__atomic_load_n(&o->ref, __ATOMIC_ACQUIRE);
}

/* In libnal: free the engine object r of a freed address or buffer handle
 * (holding bytes of storage) later, with others in one crossing
 * (loader.c). */
DCF_HIDDEN void dcf_free_later(int kind, dcf_ref r, unsigned int bytes);

/*
 * The libnal kinds are made lazily: NAL_*_new only allocates and registers
 * the handle (C memory, no call into the engine), and the engine object is
 * made by the first call that needs it, with the function at o->make.  A
 * handle without an engine object is in the state of a fresh one in any
 * process generation, so a fork snapshot skips it and the child makes its
 * own on first use.  Two threads racing on a fresh handle keep one engine
 * object (the loser frees its own, with o->unmake).
 */
static inline dcf_ref dcf_make_buffer(struct dcf_obj *o, const struct dcf_engine *e);
static inline dcf_ref dcf_make_address(struct dcf_obj *o, const struct dcf_engine *e);

static inline dcf_ref dcf_make(struct dcf_obj *o)
{
	const struct dcf_engine *e;
	dcf_ref (*make)(void);
	void (*unmake)(dcf_ref);
	dcf_ref r;

	if (!o->make || !(e = dcf_e()))
		return NULL;
	if (o->kind == DCF_K_BUFFER)
		return dcf_make_buffer(o, e);
	if (o->kind == DCF_K_ADDRESS)
		return dcf_make_address(o, e);
	memcpy(&make, (const char *)e + o->make, sizeof make);
	memcpy(&unmake, (const char *)e + o->unmake, sizeof unmake);
	if (!(r = make()))
		return NULL;
	if (dcf_install(o, r))
		return r;
	unmake(r);
	return dcf_fresh(o) ? NULL : o->ref;
}

/*
 * A standalone buffer's engine object takes over the storage its handle
 * holds (NAL_BUFFER_set_size and NAL_BUFFER_write before any other use,
 * nal.c) with the bytes written into it, under the object lock
 * so that two threads racing cannot both hand it over.  The storage stays
 * the front's if the engine makes no object.
 */
static inline dcf_ref dcf_make_buffer(struct dcf_obj *o, const struct dcf_engine *e)
{
	NAL_BUFFER *b = (NAL_BUFFER *)(void *)o;
	dcf_ref r;

	dcf_shared_get()->lock();
	r = o->ref;
	if (!r)
		e->NAL_BUFFER_new_adopt(b->mem, b->mem ? b->size : 0, b->mem ? b->used : 0, &r);
	if (r && !o->ref) {
		b->mem = NULL;
		o->gen = dcf_gen();
		__atomic_store_n(&o->ref, r, __ATOMIC_RELEASE);
	}
	dcf_shared_get()->unlock();
	return r;
}

/*
 * An address handle's engine object: made under the object lock, where
 * NAL_ADDRESS_create (nal.c) gives a fresh handle its object or its string,
 * so that two threads racing make one.  A handle created without the
 * engine has it made and created with its string in one crossing (and lets
 * go of the string).
 */
static inline dcf_ref dcf_make_address(struct dcf_obj *o, const struct dcf_engine *e)
{
	NAL_ADDRESS *a = (NAL_ADDRESS *)(void *)o;
	struct dcf_astr *p = NULL;
	dcf_ref r;

	dcf_shared_get()->lock();
	if (!(r = o->ref)) {
		if ((p = a->pend))
			e->NAL_ADDRESS_new_create(p->s, a->psize, &r);
		else
			r = e->NAL_ADDRESS_new();
		if (r) {
			a->pend = NULL;
			o->gen = dcf_gen();
			__atomic_store_n(&o->ref, r, __ATOMIC_RELEASE);
		} else
			p = NULL;
	}
	dcf_shared_get()->unlock();
	dcf_astr_put(p);
	return r;
}

/* The reference of a handle in this generation (made now for a fresh
 * libnal handle); NULL (and one line on stderr) for an object made before a
 * fork() in an earlier generation that was not carried over. */
static inline dcf_ref dcf_cur(const struct dcf_obj *co)
{
	struct dcf_obj *o = (struct dcf_obj *)co;
	dcf_ref r;

	if (!o)
		return NULL;
	r = __atomic_load_n(&o->ref, __ATOMIC_ACQUIRE);
	if (!r)
		return dcf_make(o);
	if (o->gen != dcf_gen()) {
		dcf_stale();
		return NULL;
	}
	return r;
}

/* The reference in this generation of handle h (a pointer to any handle
 * struct, possibly NULL), or NULL. */
#define dcf_ref_of(h) ((h) ? dcf_cur(&(h)->o) : NULL)

/* For a free: the engine, if o has an engine object of this generation
 * (the engine is loaded then), else NULL. */
static inline const struct dcf_engine *dcf_owner(const struct dcf_obj *o)
{
	return o->ref && o->gen == dcf_gen() ? dcf_e() : NULL;
}

static inline void dcf_set(struct dcf_obj *o, dcf_ref r)
{
	o->ref = r;
	o->gen = dcf_gen();
}

/* Register a new handle (frees accept only registered handles; a fork
 * carries them into the child); 0 if out of memory. */
static inline int dcf_track(struct dcf_obj *o, int kind)
{
	o->kind = kind;
	return dcf_shared_get()->track(o, kind);
}

/* Unregister p if it is a live handle of this kind and say 1; else 0 (and
 * one line on stderr, once): p was never returned by the library, or was
 * freed already.  p is not dereferenced. */
static inline int dcf_forget(const void *p, int kind)
{
	return p && dcf_shared_get()->forget(p, kind);
}

/* For a handle registered before its engine object exists (a plug, a
 * server, a client: the engine may call back with it): a zeroed handle of
 * n bytes (its struct dcf_obj first) registered as kind, or NULL; and its
 * undoing when the engine made no object. */
DCF_HIDDEN void *dcf_new_tracked(size_t n, int kind);
DCF_HIDDEN void dcf_discard(void *h, int kind);

/* 1 if p is a live handle of this kind (p is not dereferenced). */
static inline int dcf_live(const void *p, int kind)
{
	return p && dcf_shared_get()->live(p, kind);
}

#endif
