/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared between the three front libraries and describing the engine:
 * DCF_ENGINE_FUNCS lists every function the engine (libdistcache-engine.so)
 * exports, as X(return type, name, (parameters)); the engine's symbol is
 * "dce_" name.  Object arguments and results are engine references
 * (void *), never the front's handles.
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

#define DCF_ENGINE_FUNCS(X) \
	X(int, snapshot, (int *kinds, dcf_ref *refs, int n, char **out, size_t *outlen)) \
	X(int, restore, (char *data, size_t n, dcf_ref *newrefs, int count)) \
	X(void, conn_bufs, (dcf_ref c, dcf_ref *rd, dcf_ref *sd)) \
	X(int, fork_fds, (int *out, int n)) /* returns how many there are */ \
	X(void, NAL_config_set_nagle, (int enabled)) \
	X(dcf_ref, NAL_ADDRESS_new, (void)) \
	X(void, NAL_ADDRESS_free, (dcf_ref a)) \
	X(void, NAL_ADDRESS_reset, (dcf_ref a)) \
	X(int, NAL_ADDRESS_create, (dcf_ref a, const char *s, unsigned int size)) \
	X(unsigned int, NAL_ADDRESS_get_def_buffer_size, (dcf_ref a)) \
	X(int, NAL_ADDRESS_set_def_buffer_size, (dcf_ref a, unsigned int size)) \
	X(int, NAL_ADDRESS_can_connect, (dcf_ref a)) \
	X(int, NAL_ADDRESS_can_listen, (dcf_ref a)) \
	X(dcf_ref, NAL_SELECTOR_new, (void)) \
	X(dcf_ref, NAL_SELECTOR_new_fdselect, (void)) \
	X(dcf_ref, NAL_SELECTOR_new_fdpoll, (void)) \
	X(void, NAL_SELECTOR_free, (dcf_ref s)) \
	X(void, NAL_SELECTOR_reset, (dcf_ref s)) \
	X(int, NAL_SELECTOR_select, (dcf_ref s, unsigned long usec, int use, int *err)) \
	X(unsigned int, NAL_SELECTOR_num_objects, (dcf_ref s)) \
	X(dcf_ref, NAL_LISTENER_new, (void)) \
	X(void, NAL_LISTENER_free, (dcf_ref l)) \
	X(void, NAL_LISTENER_reset, (dcf_ref l)) \
	X(int, NAL_LISTENER_create, (dcf_ref l, dcf_ref a)) \
	X(int, NAL_LISTENER_add_to_selector, (dcf_ref l, dcf_ref s)) \
	X(void, NAL_LISTENER_del_from_selector, (dcf_ref l)) \
	X(int, NAL_LISTENER_finished, (dcf_ref l)) \
	X(int, NAL_LISTENER_set_fs_owner, (dcf_ref l, const char *o, const char *g)) \
	X(int, NAL_LISTENER_set_fs_perms, (dcf_ref l, const char *octal)) \
	X(dcf_ref, NAL_CONNECTION_new, (void)) \
	X(void, NAL_CONNECTION_free, (dcf_ref c)) \
	X(void, NAL_CONNECTION_reset, (dcf_ref c)) \
	X(int, NAL_CONNECTION_create, (dcf_ref c, dcf_ref a)) \
	X(int, NAL_CONNECTION_accept, (dcf_ref c, dcf_ref l)) \
	X(int, NAL_CONNECTION_set_size, (dcf_ref c, unsigned int size)) \
	X(dcf_ref, NAL_CONNECTION_get_read, (dcf_ref c)) \
	X(dcf_ref, NAL_CONNECTION_get_send, (dcf_ref c)) \
	X(int, NAL_CONNECTION_io, (dcf_ref c)) \
	X(int, NAL_CONNECTION_is_established, (dcf_ref c)) \
	X(int, NAL_CONNECTION_add_to_selector, (dcf_ref c, dcf_ref s)) \
	X(void, NAL_CONNECTION_del_from_selector, (dcf_ref c)) \
	X(int, NAL_CONNECTION_create_pair, (dcf_ref c1, dcf_ref c2, unsigned int size)) \
	X(dcf_ref, NAL_BUFFER_new, (void)) \
	X(void, NAL_BUFFER_free, (dcf_ref b)) \
	X(void, NAL_BUFFER_reset, (dcf_ref b)) \
	X(int, NAL_BUFFER_set_size, (dcf_ref b, unsigned int size)) \
	X(int, NAL_BUFFER_empty, (dcf_ref b)) \
	X(int, NAL_BUFFER_full, (dcf_ref b)) \
	X(int, NAL_BUFFER_notempty, (dcf_ref b)) \
	X(int, NAL_BUFFER_notfull, (dcf_ref b)) \
	X(unsigned int, NAL_BUFFER_used, (dcf_ref b)) \
	X(unsigned int, NAL_BUFFER_unused, (dcf_ref b)) \
	X(unsigned int, NAL_BUFFER_size, (dcf_ref b)) \
	X(unsigned char *, NAL_BUFFER_data, (dcf_ref b)) \
	X(unsigned int, NAL_BUFFER_write, (dcf_ref b, const unsigned char *p, unsigned int n)) \
	X(unsigned int, NAL_BUFFER_read, (dcf_ref b, unsigned char *p, unsigned int n)) \
	X(unsigned int, NAL_BUFFER_transfer, (dcf_ref d, dcf_ref s, unsigned int max)) \
	X(unsigned char *, NAL_BUFFER_write_ptr, (dcf_ref b)) \
	X(void, NAL_BUFFER_wrote, (dcf_ref b, unsigned int n)) \
	X(dcf_ref, DC_PLUG_new, (dcf_ref conn, unsigned int flags)) \
	X(int, DC_PLUG_free, (dcf_ref p)) \
	X(int, DC_PLUG_to_select, (dcf_ref p, dcf_ref sel)) \
	X(void, DC_PLUG_from_select, (dcf_ref p)) \
	X(int, DC_PLUG_io, (dcf_ref p)) \
	X(int, DC_PLUG_read, (dcf_ref p, int resume, unsigned long *uid, int *cmd, \
		const unsigned char **data, unsigned int *len)) \
	X(int, DC_PLUG_consume, (dcf_ref p)) \
	X(int, DC_PLUG_write, (dcf_ref p, int resume, unsigned long uid, int cmd, \
		const unsigned char *data, unsigned int len)) \
	X(int, DC_PLUG_write_more, (dcf_ref p, const unsigned char *data, unsigned int len)) \
	X(int, DC_PLUG_commit, (dcf_ref p)) \
	X(int, DC_PLUG_rollback, (dcf_ref p)) \
	X(dcf_ref, DC_SERVER_new, (unsigned int max, const struct st_DC_CACHE_cb *impl)) \
	X(void, DC_SERVER_free, (dcf_ref s)) \
	X(void *, DC_SERVER_reap, (void)) \
	X(unsigned int, DC_SERVER_items_stored, (dcf_ref s, const struct timeval *now)) \
	X(void, DC_SERVER_reset_operations, (dcf_ref s)) \
	X(unsigned long, DC_SERVER_num_operations, (dcf_ref s)) \
	X(dcf_ref, DC_SERVER_new_client, (dcf_ref s, dcf_ref conn, unsigned int flags, void *front)) \
	X(int, DC_SERVER_del_client, (dcf_ref c)) \
	X(int, DC_SERVER_process_client, (dcf_ref c, const struct timeval *now)) \
	X(int, DC_SERVER_clients_io, (dcf_ref s, const struct timeval *now)) \
	X(int, DC_SERVER_clients_empty, (dcf_ref s)) \
	X(dcf_ref, DC_CTX_new, (const char *target, unsigned int flags)) \
	X(void, DC_CTX_free, (dcf_ref ctx)) \
	X(int, DC_CTX_add_session, (dcf_ref ctx, const unsigned char *id, unsigned int id_len, \
		const unsigned char *data, unsigned int data_len, unsigned long timeout)) \
	X(int, DC_CTX_remove_session, (dcf_ref ctx, const unsigned char *id, unsigned int id_len)) \
	X(int, DC_CTX_get_session, (dcf_ref ctx, const unsigned char *id, unsigned int id_len, \
		unsigned char *buf, unsigned int size, unsigned int *used)) \
	X(int, DC_CTX_reget_session, (dcf_ref ctx, const unsigned char *id, unsigned int id_len, \
		unsigned char *buf, unsigned int size, unsigned int *used)) \
	X(int, DC_CTX_has_session, (dcf_ref ctx, const unsigned char *id, unsigned int id_len))

/*
 * The engine's interface version: bump it whenever DCF_ENGINE_FUNCS changes.
 * It names the engine file (libdistcache-engine-N.so; mk/capi.mk reads it
 * from here).  Beyond the name, the engine exports dce_abi(), the text of
 * DCF_ENGINE_FUNCS it was built with (DCF_ENGINE_SIG), which the loader
 * compares with its own before using anything else, and dce_engine_version().
 */
#define DCF_ENGINE_ABI 3
#define DCF_XSTR(x) DCF_STR(x)
#define DCF_STR(x) #x
#define DCF_ENGINE_FILE "libdistcache-engine-" DCF_XSTR(DCF_ENGINE_ABI) ".so"
#define DCF_SIG_X(r, n, a) #r " " #n #a ";"
#define DCF_ENGINE_SIG "abi " DCF_XSTR(DCF_ENGINE_ABI) ": " DCF_ENGINE_FUNCS(DCF_SIG_X)

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
