/* SPDX-License-Identifier: Apache-2.0 */
/*
 * <distcache/dc_server.h> -- DC_SERVER, the embeddable session-cache server:
 * request processing over DC_PLUG, with the default cache or a caller-supplied
 * one (DC_CACHE_cb).
 *
 * distcache-go: declarations match distcache 1.5 exactly (DC_CACHE_cb member
 * order included); this file is our own.  It includes <sys/time.h> and
 * <libnal/nal.h> itself (the original required the caller to).
 */
#ifndef HEADER_DISTCACHE_DC_SERVER_H
#define HEADER_DISTCACHE_DC_SERVER_H

#include <sys/time.h>
#include <libnal/nal.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Limits of the default cache and of stored sessions. */
#define DC_CACHE_MIN_SIZE		64
#define DC_CACHE_MAX_SIZE		60000
#define DC_MAX_EXPIRY			(unsigned long)604800000 /* 7 days in ms */
#define DC_MAX_DATA_LEN			32768

typedef struct st_DC_SERVER DC_SERVER;
typedef struct st_DC_CLIENT DC_CLIENT;
typedef struct st_DC_CACHE  DC_CACHE;

/* A cache implementation: seven callbacks, all required.  'now' is the time
 * the caller passed to the DC_SERVER function that led to the call.
 * cache_get with store == NULL returns the session's length (0 = absent);
 * with a store it copies up to store_size bytes and returns the length. */
typedef struct st_DC_CACHE_cb {
	DC_CACHE *	(*cache_new)(unsigned int max_sessions);
	void		(*cache_free)(DC_CACHE *cache);
	int		(*cache_add)(DC_CACHE *cache,
				const struct timeval *now,
				unsigned long timeout_msecs,
				const unsigned char *session_id,
				unsigned int session_id_len,
				const unsigned char *data,
				unsigned int data_len);
	unsigned int	(*cache_get)(DC_CACHE *cache,
				const struct timeval *now,
				const unsigned char *session_id,
				unsigned int session_id_len,
				unsigned char *store,
				unsigned int store_size);
	int		(*cache_remove)(DC_CACHE *cache,
				const struct timeval *now,
				const unsigned char *session_id,
				unsigned int session_id_len);
	int		(*cache_have)(DC_CACHE *cache,
				const struct timeval *now,
				const unsigned char *session_id,
				unsigned int session_id_len);
	unsigned int	(*cache_num_items)(DC_CACHE *cache,
				const struct timeval *now);
} DC_CACHE_cb;

/* NOFREE_CONN: deleting the client leaves its connection alone.
 * IN_SERVER: DC_SERVER_clients_io() drives (and deletes) the client. */
#define DC_CLIENT_FLAG_NOFREE_CONN		(unsigned int)0x0001
#define DC_CLIENT_FLAG_IN_SERVER		(unsigned int)0x0002

DC_SERVER *DC_SERVER_new(unsigned int max_sessions);
void DC_SERVER_free(DC_SERVER *ctx);
int DC_SERVER_set_default_cache(void);
int DC_SERVER_set_cache(const DC_CACHE_cb *impl);
unsigned int DC_SERVER_items_stored(DC_SERVER *ctx,
				const struct timeval *now);
void DC_SERVER_reset_operations(DC_SERVER *ctx);
unsigned long DC_SERVER_num_operations(DC_SERVER *ctx);
DC_CLIENT *DC_SERVER_new_client(DC_SERVER *ctx,
				NAL_CONNECTION *conn,
				unsigned int flags);
int DC_SERVER_del_client(DC_CLIENT *clnt);
int DC_SERVER_process_client(DC_CLIENT *clnt,
				const struct timeval *now);
int DC_SERVER_clients_io(DC_SERVER *ctx, const struct timeval *now);
int DC_SERVER_clients_empty(const DC_SERVER *ctx);

#ifdef __cplusplus
}
#endif

#endif /* HEADER_DISTCACHE_DC_SERVER_H */
