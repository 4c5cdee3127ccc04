/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared between the three front libraries and describing the engine:
 * DCF_ENGINE_FUNCS (api_gen.h, generated from api.tab) lists every function
 * the engine (libdistcache-engine.so) exports, as X(return type, name,
 * (parameters)); the engine's symbol is "dce_" name.  Object arguments and
 * results are engine references (void *), never the front's handles.
 *
 * Private to the front: nothing here is installed.
 */
#ifndef DCF_ENGINE_H
#define DCF_ENGINE_H

#include <stddef.h>
#include <sys/time.h>

#define DCF_HIDDEN __attribute__((visibility("hidden")))
#define DCF_PUBLIC __attribute__((visibility("default")))

typedef void *dcf_ref;
struct st_DC_CACHE_cb;
struct dcf_obj;

#include "api_gen.h"	/* DCF_ENGINE_FUNCS, from api.tab */

/*
 * The engine's interface version: bump it whenever DCF_ENGINE_FUNCS (the
 * engine rows of api.tab and the rows that call the engine) or the layout
 * of what an operation hands the front (DCF_LINK_FIELDS) changes.
 * It names the engine file (libdistcache-engine-N.so; mk/capi.mk reads it
 * from here).  Beyond the name, the engine exports dce_abi(), the text of
 * DCF_ENGINE_FUNCS it was built with (DCF_ENGINE_SIG), which the loader
 * compares with its own before using anything else, and dce_engine_version().
 */
#define DCF_ENGINE_ABI 10
/* The largest NAL_BUFFER size (goimpl/nal BufferMaxSize; nal/ tests that
 * they agree): the front sets a fresh buffer's size itself (nal.c). */
#define DCF_BUFFER_MAX 32768
/* What a DC_CTX operation of the engine hands the front in long
 * link[DCF_LINK_N] (the fast path, dc_client.c): a connected socket the
 * front now owns (or -1), the bound of an exchange then and the limits it
 * adapts within (equal: fixed), the default lifetime, and whether the front must close the sockets it holds
 * (the engine dropped its own, or went on probation).  how: the operation
 * itself, or its one resend after the front's connection died. */
#define DCF_LINK_FIELDS(X) X(FD) X(BOUND_US) X(FLOOR_US) X(CEIL_US) X(LIFETIME_MS) X(DROP)
#define DCF_LINK_ENUM(f) DCF_LINK_##f,
enum { DCF_LINK_FIELDS(DCF_LINK_ENUM) DCF_LINK_N };
#undef DCF_LINK_ENUM
enum { DCF_HOW_FIRST = 0, DCF_HOW_RESENT = 1 };
#define DCF_XSTR(x) DCF_STR(x)
#define DCF_STR(x) #x
#define DCF_ENGINE_FILE "libdistcache-engine-" DCF_XSTR(DCF_ENGINE_ABI) ".so"
#define DCF_SIG_X(r, n, a) #r " " #n #a ";"
/* The link's layout is part of the interface too. */
#define DCF_LINK_SIG_X(f) #f " "
#define DCF_ENGINE_SIG "abi " DCF_XSTR(DCF_ENGINE_ABI) ": " DCF_ENGINE_FUNCS(DCF_SIG_X) \
	" link: " DCF_LINK_FIELDS(DCF_LINK_SIG_X)

struct dcf_engine {
#define DCF_X(r, n, a) r (*n) a;
	DCF_ENGINE_FUNCS(DCF_X)
#undef DCF_X
};

/*
 * What libnal.so.1 (which owns the single loader of a process) hands to
 * libdistcache.so.1 and libdistcacheserver.so.1: the one symbol libnal
 * exports beyond the public API, dcf_front_shared, in its private version
 * node DISTCACHE_GO_FRONT_<DCF_SHARED_VERSION> (mk/capi.mk writes the
 * version script from here).  The other two libraries bind to that node,
 * so a libnal.so.1 of another front version (or the original's) is refused
 * by the dynamic linker when they are loaded, by name.
 */
struct dcf_shared {
	int version;
	/* The engine of the current generation, loading it on first use;
	 * NULL (after one line on stderr) if it cannot be loaded. */
	const struct dcf_engine *(*engine)(void);
	/* Bumped in every child after fork(); read it without a lock. */
	volatile unsigned long *generation;
	/* The front's object lock, also held across fork(). */
	void (*lock)(void);
	void (*unlock)(void);
	/* The registry of live handles (frees check it; the fork snapshot
	 * walks it): track is 0 when out of memory, forget is 0 when p is not
	 * a live handle of that kind. */
	int (*track)(const void *p, int kind);
	int (*forget)(const void *p, int kind);
	int (*live)(const void *p, int kind);
	/* Say once per generation that a stale object was used. */
	void (*stale)(void);
};

#define DCF_SHARED_VERSION 5
const struct dcf_shared *dcf_front_shared(void);	/* a function: ASan adds a symbol per exported variable */

/* In libnal: the table itself; in the other fronts: fetched once. */
DCF_HIDDEN const struct dcf_shared *dcf_shared_get(void);

#endif
