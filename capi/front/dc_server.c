/*
 * libdistcacheserver.so.1: DC_SERVER_*.
 *
 * Not wired to the engine yet (goimpl/server is not available): every
 * function gives its failure value after one line on stderr.
 */
#include <stdio.h>
#include <distcache/dc_server.h>
#include "front.h"

static void missing(void)
{
	static int said;

	if (!said) {
		said = 1;
		fprintf(stderr, "distcache: DC_SERVER is not available in this build\n");
	}
}

DCF_PUBLIC DC_SERVER *DC_SERVER_new(unsigned int max_sessions)
{
	(void)max_sessions;
	missing();
	return NULL;
}

DCF_PUBLIC void DC_SERVER_free(DC_SERVER *ctx)
{
	(void)ctx;
}

DCF_PUBLIC int DC_SERVER_set_default_cache(void)
{
	missing();
	return 0;
}

DCF_PUBLIC int DC_SERVER_set_cache(const DC_CACHE_cb *impl)
{
	(void)impl;
	missing();
	return 0;
}

DCF_PUBLIC unsigned int DC_SERVER_items_stored(DC_SERVER *ctx, const struct timeval *now)
{
	(void)ctx;
	(void)now;
	return 0;
}

DCF_PUBLIC void DC_SERVER_reset_operations(DC_SERVER *ctx)
{
	(void)ctx;
}

DCF_PUBLIC unsigned long DC_SERVER_num_operations(DC_SERVER *ctx)
{
	(void)ctx;
	return 0;
}

DCF_PUBLIC DC_CLIENT *DC_SERVER_new_client(DC_SERVER *ctx, NAL_CONNECTION *conn,
		unsigned int flags)
{
	(void)ctx;
	(void)conn;
	(void)flags;
	missing();
	return NULL;
}

DCF_PUBLIC int DC_SERVER_del_client(DC_CLIENT *clnt)
{
	(void)clnt;
	return 0;
}

DCF_PUBLIC int DC_SERVER_process_client(DC_CLIENT *clnt, const struct timeval *now)
{
	(void)clnt;
	(void)now;
	return 0;
}

DCF_PUBLIC int DC_SERVER_clients_io(DC_SERVER *ctx, const struct timeval *now)
{
	(void)ctx;
	(void)now;
	return 0;
}

DCF_PUBLIC int DC_SERVER_clients_empty(const DC_SERVER *ctx)
{
	(void)ctx;
	return 1;
}
