/* SPDX-License-Identifier: Apache-2.0 */
/*
 * <distcache/dc_client.h> -- DC_CTX, the blocking session-cache client.
 *
 * distcache-go: declarations match distcache 1.5 exactly; this file is our
 * own.  In distcache-go a DC_CTX may be shared by many threads at once, and
 * keeps working in processes forked after it was created.
 */
#ifndef HEADER_DISTCACHE_DC_CLIENT_H
#define HEADER_DISTCACHE_DC_CLIENT_H

#ifdef __cplusplus
extern "C" {
#endif

/* Tested by consumers at compile time (httpd's configure checks == 0x0001). */
#define DISTCACHE_CLIENT_API	0x0001
#define DISTCACHE_CLIENT_BINARY	0x0001

typedef struct st_DC_CTX DC_CTX;

/* Flags of DC_CTX_new(); the last three only matter with PERSISTENT. */
#define DC_CTX_FLAG_PERSISTENT		(unsigned int)0x0001
#define DC_CTX_FLAG_PERSISTENT_PIDCHECK	(unsigned int)0x0002
#define DC_CTX_FLAG_PERSISTENT_RETRY	(unsigned int)0x0004
#define DC_CTX_FLAG_PERSISTENT_LATE	(unsigned int)0x0008

/* Smallest session timeout (milliseconds) the original accepted. */
#define DC_MIN_TIMEOUT			500

DC_CTX *DC_CTX_new(const char *target, unsigned int flags);
void DC_CTX_free(DC_CTX *ctx);
int DC_CTX_add_session(DC_CTX *ctx,
			const unsigned char *id_data,
			unsigned int id_len,
			const unsigned char *sess_data,
			unsigned int sess_len,
			unsigned long timeout_msecs);
int DC_CTX_remove_session(DC_CTX *ctx,
			const unsigned char *id_data,
			unsigned int id_len);
/* *result_used receives the full session length, even when it exceeds
 * result_size (then only result_size bytes were copied). */
int DC_CTX_get_session(DC_CTX *ctx,
			const unsigned char *id_data,
			unsigned int id_len,
			unsigned char *result_storage,
			unsigned int result_size,
			unsigned int *result_used);
/* Like get, without network I/O, if the last operation was a successful
 * get of the same id. */
int DC_CTX_reget_session(DC_CTX *ctx,
			const unsigned char *id_data,
			unsigned int id_len,
			unsigned char *result_storage,
			unsigned int result_size,
			unsigned int *result_used);
/* 1 present, 0 absent, -1 failure. */
int DC_CTX_has_session(DC_CTX *ctx,
			const unsigned char *id_data,
			unsigned int id_len);

#ifdef __cplusplus
}
#endif

#endif /* HEADER_DISTCACHE_DC_CLIENT_H */
