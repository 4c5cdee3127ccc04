/* SPDX-License-Identifier: Apache-2.0 */
/*
 * <distcache/dc_plug.h> -- DC_PLUG, the asynchronous message layer of
 * distcache: it turns one NAL_CONNECTION's byte stream into whole protocol
 * messages and back.  Also the protocol constants and limits.
 *
 * distcache-go: declarations match distcache 1.5 exactly; this file is our
 * own.  It includes <libnal/nal.h> itself (the original required the caller
 * to include it first; doing so is still fine).
 */
#ifndef HEADER_DISTCACHE_DC_PLUG_H
#define HEADER_DISTCACHE_DC_PLUG_H

#include <libnal/nal.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Protocol level: version in the upper 16 bits, patch level in the lower. */
#define DISTCACHE_GET_PROTO_VER(a)	((a) >> 16)
#define DISTCACHE_GET_PATCH_LEVEL(a)	((a) & 0x0000FFFF)
#define DISTCACHE_MAKE_PROTO_LEVEL(a,b)	(((a) << 16) + (b))
#define DISTCACHE_PROTO_VER	0x11
#define DISTCACHE_PATCH_LEVEL	0x00
#define DISTCACHE_PROTO_LEVEL	DISTCACHE_MAKE_PROTO_LEVEL(\
					DISTCACHE_PROTO_VER,DISTCACHE_PATCH_LEVEL)

/* Message commands (wire values 0..4); DC_CMD_ERROR is never sent. */
typedef enum {
	DC_CMD_ERROR,
	DC_CMD_ADD,
	DC_CMD_GET,
	DC_CMD_REMOVE,
	DC_CMD_HAVE
} DC_CMD;

/* Frame payload limit, frames per message, message limit, session-id limit. */
#define DC_MSG_MAX_DATA		2048
#define DC_MAX_MSG		16
#define DC_MAX_TOTAL_DATA	(DC_MSG_MAX_DATA * DC_MAX_MSG)
#define DC_MAX_ID_LEN		64

typedef struct st_DC_PLUG DC_PLUG;

/* TO_SERVER: client role (send requests, read responses).
 * NOFREE_CONN: DC_PLUG_free() leaves the connection alone. */
#define DC_PLUG_FLAG_TO_SERVER		(unsigned int)0x0001
#define DC_PLUG_FLAG_NOFREE_CONN	(unsigned int)0x0002

DC_PLUG *DC_PLUG_new(NAL_CONNECTION *conn, unsigned int flags);
int DC_PLUG_free(DC_PLUG *plug);
int DC_PLUG_to_select(DC_PLUG *plug, NAL_SELECTOR *sel);
void DC_PLUG_from_select(DC_PLUG *plug);
int DC_PLUG_io(DC_PLUG *plug);
/* *payload_data points into the plug (valid until consume/free). */
int DC_PLUG_read(DC_PLUG *plug, int resume,
		unsigned long *request_uid,
		DC_CMD *cmd,
		const unsigned char **payload_data,
		unsigned int *payload_len);
int DC_PLUG_consume(DC_PLUG *plug);
int DC_PLUG_write(DC_PLUG *plug, int resume,
		unsigned long request_uid,
		DC_CMD cmd,
		const unsigned char *payload_data,
		unsigned int payload_len);
int DC_PLUG_write_more(DC_PLUG *plug,
		const unsigned char *data, unsigned int data_len);
int DC_PLUG_commit(DC_PLUG *plug);
int DC_PLUG_rollback(DC_PLUG *plug);

#ifdef __cplusplus
}
#endif

#endif /* HEADER_DISTCACHE_DC_PLUG_H */
