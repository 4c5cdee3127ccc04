/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libdistcache.so.1: the DC_PLUG_* and DC_CTX_* functions written by hand
 * (api.tab, form c); the plug's trampolines are generated (dc_client_gen.c).
 *
 * DC_CTX_new never touches the engine: it checks the target as the original
 * did (syntax, host resolution, connectability: target.c, and for PERSISTENT
 * without LATE an immediate unix-socket connect) and records its resolved
 * form.  Each process
 * generation makes its own engine context on its first operation, so a
 * context made in a parent works in every forked child.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <distcache/dc_plug.h>
#include <distcache/dc_client.h>
#include "front.h"
#include "target.h"

/* ---- DC_PLUG (the rest is generated: dc_client_gen.c) ---- */

DCF_PUBLIC DC_PLUG *DC_PLUG_new(NAL_CONNECTION *conn, unsigned int flags)
{
	const struct dcf_engine *e = dcf_e();
	DC_PLUG *p;
	dcf_ref r, rc;

	if (!e || !(rc = dcf_ref_of(conn)))
		return NULL;
	if (!(p = dcf_new_tracked(sizeof *p, DCF_K_PLUG)))
		return NULL;
	if (!(r = e->DC_PLUG_new(rc, flags))) {
		dcf_discard(p, DCF_K_PLUG);
		return NULL;
	}
	dcf_set(&p->o, r);
	p->conn = conn;
	p->flags = flags;
	return p;
}

DCF_PUBLIC int DC_PLUG_free(DC_PLUG *p)
{
	const struct dcf_engine *e;

	if (!dcf_forget(p, DCF_K_PLUG))
		return 0;
	if ((e = dcf_owner(&p->o)))
		e->DC_PLUG_free(p->o.ref);
	/* The engine freed the connection; release its handle too. */
	if (!(p->flags & DC_PLUG_FLAG_NOFREE_CONN) && dcf_forget(p->conn, DCF_K_CONNECTION))
		free(p->conn);
	free(p);
	return 1;
}

DCF_PUBLIC int DC_PLUG_read(DC_PLUG *p, int resume, unsigned long *uid, DC_CMD *cmd,
		const unsigned char **data, unsigned int *len)
{
	const struct dcf_engine *e = dcf_e();
	int c = 0, ok;
	dcf_ref r;

	if (!e || !(r = dcf_ref_of(p)))
		return 0;
	ok = e->DC_PLUG_read(r, resume, uid, &c, data, len);
	if (ok && cmd)
		*cmd = (DC_CMD)c;
	return ok;
}

/* ---- DC_CTX ---- */

struct st_DC_CTX {
	char *target;
	unsigned int flags;
	unsigned long gen;	/* generation of ref */
	dcf_ref ref;		/* engine context of that generation, or NULL */
};

#define MAX_ID_OR_DATA 32768u

/* PERSISTENT without LATE connected in DC_CTX_new in the original, failing
 * at once for a unix socket nobody listens on; do the same check (the real
 * connection is made lazily by the engine). */
static int unix_reachable(const char *path)
{
	struct sockaddr_un sa;
	int fd, ok;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

DCF_PUBLIC DC_CTX *DC_CTX_new(const char *target, unsigned int flags)
{
	DC_CTX *c;
	int is_unix;
	size_t n;
	char canon[DCF_TARGET_MAX];

	/* resolved here, once, outside the engine lock; the engine gets the
	 * numeric form */
	if (!target || !dcf_target(target, canon, &is_unix))
		return NULL;
	if ((flags & DC_CTX_FLAG_PERSISTENT) && !(flags & DC_CTX_FLAG_PERSISTENT_LATE) &&
	    is_unix && !unix_reachable(target + 5))
		return NULL;
	c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	/* Padded with zeros to a multiple of 32 bytes: the engine reads the
	 * string with Go's scan for its end, which loads aligned 32-byte
	 * blocks (harmless, but valgrind reported it past a shorter block). */
	n = strlen(canon) + 1;
	c->target = calloc(1, (n + 31) & ~(size_t)31);
	if (c->target)
		memcpy(c->target, canon, n);
	if (!c->target) {
		free(c);
		return NULL;
	}
	c->flags = flags;
	if (!dcf_shared_get()->track(c, DCF_K_CTX)) {
		free(c->target);
		free(c);
		return NULL;
	}
	return c;
}

/* httpd's mod_socache_dc can pass a pointer it never got from DC_CTX_new
 * (uninitialised pool memory, when mod_ssl skipped the cache's init):
 * the registry check ignores it without reading it. */
DCF_PUBLIC void DC_CTX_free(DC_CTX *c)
{
	const struct dcf_shared *sh;

	if (!dcf_forget(c, DCF_K_CTX))
		return;
	sh = dcf_shared_get();
	/* Only a context used in this generation has an engine side (and then
	 * the engine is loaded); never load the engine just to free. */
	if (c->ref && c->gen == *sh->generation) {
		const struct dcf_engine *e = sh->engine();
		sh->lock();
		if (e && c->ref && c->gen == *sh->generation)
			e->DC_CTX_free(c->ref);
		sh->unlock();
	}
	free(c->target);
	free(c);
}

/* The engine context of this generation, made on first use. */
static dcf_ref ctx_ref(DC_CTX *c, const struct dcf_engine **ep)
{
	const struct dcf_shared *sh = dcf_shared_get();
	const struct dcf_engine *e = sh->engine();
	dcf_ref r;

	if (!e)
		return NULL;
	sh->lock();
	if (!c->ref || c->gen != *sh->generation) {
		c->ref = e->DC_CTX_new(c->target, c->flags);
		c->gen = *sh->generation;
	}
	r = c->ref;
	sh->unlock();
	*ep = e;
	return r;
}

static int id_ok(const unsigned char *id, unsigned int id_len)
{
	return id && id_len >= 1 && id_len <= MAX_ID_OR_DATA;
}

DCF_PUBLIC int DC_CTX_add_session(DC_CTX *c, const unsigned char *id, unsigned int id_len,
		const unsigned char *data, unsigned int data_len, unsigned long timeout)
{
	const struct dcf_engine *e;
	dcf_ref r;

	if (!c || !id_ok(id, id_len) || !data || data_len < 1 ||
	    8ul + id_len + data_len > MAX_ID_OR_DATA)
		return 0;
	if (!(r = ctx_ref(c, &e)))
		return 0;
	return e->DC_CTX_add_session(r, id, id_len, data, data_len, timeout);
}

DCF_PUBLIC int DC_CTX_remove_session(DC_CTX *c, const unsigned char *id, unsigned int id_len)
{
	const struct dcf_engine *e;
	dcf_ref r;

	if (!c || !id_ok(id, id_len) || !(r = ctx_ref(c, &e)))
		return 0;
	return e->DC_CTX_remove_session(r, id, id_len);
}

DCF_PUBLIC int DC_CTX_get_session(DC_CTX *c, const unsigned char *id, unsigned int id_len,
		unsigned char *buf, unsigned int size, unsigned int *used)
{
	const struct dcf_engine *e;
	dcf_ref r;

	if (!c || !id_ok(id, id_len) || !(r = ctx_ref(c, &e)))
		return 0;
	return e->DC_CTX_get_session(r, id, id_len, buf, buf ? size : 0, used);
}

DCF_PUBLIC int DC_CTX_reget_session(DC_CTX *c, const unsigned char *id, unsigned int id_len,
		unsigned char *buf, unsigned int size, unsigned int *used)
{
	const struct dcf_engine *e;
	dcf_ref r;

	if (!c || !id_ok(id, id_len) || !(r = ctx_ref(c, &e)))
		return 0;
	return e->DC_CTX_reget_session(r, id, id_len, buf, buf ? size : 0, used);
}

DCF_PUBLIC int DC_CTX_has_session(DC_CTX *c, const unsigned char *id, unsigned int id_len)
{
	const struct dcf_engine *e;
	dcf_ref r;

	if (!c || !id_ok(id, id_len) || !(r = ctx_ref(c, &e)))
		return -1;
	return e->DC_CTX_has_session(r, id, id_len);
}
