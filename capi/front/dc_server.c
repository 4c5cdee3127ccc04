/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libdistcacheserver.so.1: the DC_SERVER_* functions written by hand
 * (api.tab, form c); the plain trampolines are generated (dc_server_gen.c).
 *
 * The cache choice (DC_SERVER_set_cache / set_default_cache) is a process
 * global kept here, in the front, and passed to the engine with each
 * DC_SERVER_new.  Clients the engine deletes by itself (DC_SERVER_clients_io
 * on a dead connection, DC_SERVER_free) are handed back through
 * DC_SERVER_reap so that their handles (and their connections' handles) are
 * released here.
 */
#include <stdlib.h>
#include <distcache/dc_server.h>
#include "front.h"

static const DC_CACHE_cb *cache_impl;	/* NULL: none chosen yet */
static int cache_default;

/* Release a client's handle (and its connection's) once the engine
 * deleted it. */
static void release(DC_CLIENT *c)
{
	if (!dcf_forget(c, DCF_K_CLIENT))
		return;
	if (!(c->flags & DC_CLIENT_FLAG_NOFREE_CONN) && dcf_forget(c->conn, DCF_K_CONNECTION))
		free(c->conn);
	free(c);
}

static void reap(const struct dcf_engine *e)
{
	void *h;

	while ((h = e->DC_SERVER_reap()) != NULL)
		release(h);
}

DCF_PUBLIC int DC_SERVER_set_default_cache(void)
{
	cache_impl = NULL;
	cache_default = 1;
	return 1;
}

DCF_PUBLIC int DC_SERVER_set_cache(const DC_CACHE_cb *impl)
{
	if (!impl || !impl->cache_new || !impl->cache_free || !impl->cache_add || !impl->cache_get ||
	    !impl->cache_remove || !impl->cache_have || !impl->cache_num_items)
		return 0;
	cache_impl = impl;
	cache_default = 0;
	return 1;
}

DCF_PUBLIC DC_SERVER *DC_SERVER_new(unsigned int max_sessions)
{
	const struct dcf_engine *e;
	DC_SERVER *s;
	dcf_ref r;

	if ((!cache_impl && !cache_default) || !(e = dcf_e()))
		return NULL;
	if (!(s = dcf_new_tracked(sizeof *s, DCF_K_SERVER)))
		return NULL;
	if (!(r = e->DC_SERVER_new(max_sessions, cache_impl))) {
		dcf_discard(s, DCF_K_SERVER);
		return NULL;
	}
	dcf_set(&s->o, r);
	return s;
}

DCF_PUBLIC void DC_SERVER_free(DC_SERVER *s)
{
	const struct dcf_engine *e;

	if (!dcf_forget(s, DCF_K_SERVER))
		return;
	if ((e = dcf_owner(&s->o))) {
		e->DC_SERVER_free(s->o.ref);
		reap(e);
	}
	free(s);
}

DCF_PUBLIC DC_CLIENT *DC_SERVER_new_client(DC_SERVER *s, NAL_CONNECTION *conn, unsigned int flags)
{
	const struct dcf_engine *e = dcf_e();
	DC_CLIENT *c;
	dcf_ref r, rs, rc;

	if (!e || !(rs = dcf_ref_of(s)) || !(rc = dcf_ref_of(conn)))
		return NULL;
	if (!(c = dcf_new_tracked(sizeof *c, DCF_K_CLIENT)))
		return NULL;
	if (!(r = e->DC_SERVER_new_client(rs, rc, flags, c))) {
		dcf_discard(c, DCF_K_CLIENT);
		return NULL;
	}
	dcf_set(&c->o, r);
	c->conn = conn;
	c->flags = flags;
	return c;
}

DCF_PUBLIC int DC_SERVER_del_client(DC_CLIENT *c)
{
	const struct dcf_engine *e;
	dcf_ref r;

	if (!dcf_live(c, DCF_K_CLIENT) || !(e = dcf_e()) || !(r = dcf_ref_of(c)))
		return 0;
	if (!e->DC_SERVER_del_client(r))
		return 0;
	release(c);
	return 1;
}

DCF_PUBLIC int DC_SERVER_clients_io(DC_SERVER *s, const struct timeval *now)
{
	const struct dcf_engine *e = dcf_e();
	dcf_ref r;
	int ret;

	if (!e || !(r = dcf_ref_of(s)))
		return 0;
	ret = e->DC_SERVER_clients_io(r, now);
	reap(e);
	return ret;
}

