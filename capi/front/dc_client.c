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
 *
 * The fast path.  Entering the Go engine costs a caller that calls now and
 * then (an Apache child) more CPU than the exchange itself, so an
 * operation on a connection the engine already made is done here, in C:
 * after each of its operations the engine hands the front one of the
 * context's idle connections (a descriptor, DCF_LINK_*), which the front
 * keeps in the context's pool (per process generation, DCW_MAX_IDLE at
 * most, closed in a forked child and by DC_CTX_free).  An operation takes
 * one for itself, checks it as the engine would (a kept connection of a
 * context without PERSISTENT must show nothing to read), writes the
 * request, waits within the engine's bound and reads the answer with the
 * codec of wire.c, and puts the connection back.  A context without
 * PERSISTENT on a unix socket whose engine side does not exist yet in this
 * generation connects by itself (dial), so that a process whose operations
 * all succeed never loads the engine.  Whatever it cannot
 * finish cleanly goes to the engine: nothing written yet, the operation
 * itself; a connection that died before its answer began, the engine's one
 * resend (when the engine would resend); else a failure the engine is told
 * of (probation after a timeout).  The reget state is the front's: a GET
 * done here is remembered here, one done by the engine is asked of it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <distcache/dc_plug.h>
#include <distcache/dc_client.h>
#include "front.h"
#include "target.h"
#include "wire.h"
#include "nearmap.h"

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

enum { REGET_NONE, REGET_FRONT, REGET_ENGINE };

/* A connection an operation took from the pool (on the operation's
 * stack), listed in the context until it is back or closed, so that a
 * child forked meanwhile closes its copy too. */
struct busy_fd {
	int fd;
	struct busy_fd *prev, *next;
};

struct st_DC_CTX {
	char *target;
	unsigned int flags;
	unsigned long gen;	/* generation of ref */
	dcf_ref ref;		/* engine context of that generation, or NULL */
	/* every context, for the fork child (under the object lock) */
	struct st_DC_CTX *prev, *next;
	/* under mu (a spin lock: reset in a forked child) */
	int mu;
	unsigned long pool_gen;	/* generation of idle */
	int nidle;
	int idle[DCW_MAX_IDLE];	/* connections handed over by the engine */
	struct busy_fd *busy;	/* connections taken by operations in flight */
	long lifetime_ms;	/* as of the last handover */
	/* the bound of an exchange: the engine's at the last handover (when),
	 * the limits, and the answers seen here (latency, below) */
	long bound_us, floor_us, ceil_us;
	long long bound_at;
	long long lat_cur, lat_prev, lat_start, lat_at;
	long long lat_first;	/* the first answer after none for two windows */
	int reget;		/* REGET_* */
	unsigned int reget_id_len;
	unsigned char reget_id[DCW_MAX_ID_LEN];
	unsigned char *reget_data;	/* REGET_FRONT: the last GET's answer */
	size_t reget_len, reget_cap;
	uint32_t uid;		/* the fast path's request uids */
	/* dc_client's shared near map (nearmap.h), under mu: the one in use,
	 * whether to ask for one (NM_*), and when next */
	struct nm_ref *nm;
	int nm_state;
	long long nm_at;
};

/* A mapped near map and the lookups reading it; unmapped by the last one
 * once it is retired. */
struct nm_ref {
	struct dcnm m;
	int refs, retired;
};

enum { NM_ASK, NM_ASKING, NM_MAPPED, NM_NONE };

/* A map whose lease ended over this long ago is asked for again (its
 * dc_client restarted, or off); a dc_client that had none, this long
 * after its answer. */
#define NM_STALE_NS 1000000000LL
#define NM_RETRY_US 1000000LL
#define NM_NONE_RETRY_US 60000000LL

#define MAX_ID_OR_DATA 32768u

static DC_CTX *ctx_list;

static void ctx_lock(DC_CTX *c)
{
	int spins = 0;

	while (__atomic_exchange_n(&c->mu, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&c->mu, __ATOMIC_RELAXED))
			if (++spins > 100)
				sched_yield();
}

static void ctx_unlock(DC_CTX *c)
{
	__atomic_store_n(&c->mu, 0, __ATOMIC_RELEASE);
}

/* Closes the pool's connections; under mu. */
static void pool_drop(DC_CTX *c)
{
	while (c->nidle > 0)
		close(c->idle[--c->nidle]);
}

/* Under mu: a pool of another generation (a fork's parent's) is closed,
 * and the pool is this generation's. */
static void pool_own(DC_CTX *c)
{
	if (c->pool_gen != dcf_gen()) {
		pool_drop(c);
		c->pool_gen = dcf_gen();
	}
}

/* Under mu: fd is busy with one operation, listed in b until busy_end. */
static void busy_link(DC_CTX *c, struct busy_fd *b, int fd)
{
	b->fd = fd;
	b->prev = NULL;
	b->next = c->busy;
	if (c->busy)
		c->busy->prev = b;
	c->busy = b;
}

/* A connection of the pool for one operation (listed busy in b until
 * busy_end), or -1; the pool of another generation (a fork's parent) is
 * closed first. */
static int pool_take(DC_CTX *c, struct busy_fd *b)
{
	int fd = -1;

	ctx_lock(c);
	pool_own(c);
	if (c->nidle > 0) {
		fd = c->idle[--c->nidle];
		busy_link(c, b, fd);
	}
	ctx_unlock(c);
	return fd;
}

/* Under mu: b's connection is no longer busy. */
static void busy_unlink(DC_CTX *c, struct busy_fd *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		c->busy = b->next;
	if (b->next)
		b->next->prev = b->prev;
}

/* Under mu: fd into the pool; -1, or fd when there is no room (the caller
 * closes it). */
static int pool_put_locked(DC_CTX *c, int fd)
{
	pool_own(c);
	if (c->nidle < DCW_MAX_IDLE) {
		c->idle[c->nidle++] = fd;
		fd = -1;
	}
	return fd;
}

static void pool_put(DC_CTX *c, int fd)
{
	ctx_lock(c);
	fd = pool_put_locked(c, fd);
	ctx_unlock(c);
	if (fd >= 0)
		close(fd);
}

/* An operation is done with its connection b: back into the pool
 * (reuse), else closed; no longer busy either way, at once. */
static void busy_end(DC_CTX *c, struct busy_fd *b, int reuse)
{
	int fd = b->fd;

	ctx_lock(c);
	busy_unlink(c, b);
	if (reuse)
		fd = pool_put_locked(c, fd);
	ctx_unlock(c);
	if (fd >= 0)
		close(fd);
}

static void pool_clear(DC_CTX *c)
{
	ctx_lock(c);
	pool_drop(c);
	ctx_unlock(c);
}

/* In a forked child: the parent's connections are closed at once, the
 * pooled ones and those other threads were using (the child's engine makes
 * its own), and no reget crosses the fork. */
static void ctx_fork_child(void)
{
	DC_CTX *c;
	struct busy_fd *b;

	for (c = ctx_list; c; c = c->next) {
		c->mu = 0;
		pool_drop(c);
		for (b = c->busy; b; b = b->next)
			close(b->fd);
		c->busy = NULL;
		c->reget = REGET_NONE;
		/* the mapping is the child's too; the parent's lookups are not */
		if (c->nm)
			c->nm->refs = 0;
		if (c->nm_state == NM_ASKING)
			c->nm_state = NM_ASK;
	}
}

__attribute__((constructor)) static void dc_client_init(void)
{
	pthread_atfork(NULL, NULL, ctx_fork_child);
}

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
	const struct dcf_shared *sh;
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
	sh = dcf_shared_get();
	if (!sh->track(c, DCF_K_CTX)) {
		free(c->target);
		free(c);
		return NULL;
	}
	sh->lock();
	c->next = ctx_list;
	if (ctx_list)
		ctx_list->prev = c;
	ctx_list = c;
	sh->unlock();
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
	sh->lock();
	if (c->prev)
		c->prev->next = c->next;
	else
		ctx_list = c->next;
	if (c->next)
		c->next->prev = c->prev;
	sh->unlock();
	pool_clear(c);
	if (c->nm) {
		dcnm_unmap(&c->nm->m);
		free(c->nm);
	}
	/* Only a context used in this generation has an engine side (and then
	 * the engine is loaded); never load the engine just to free. */
	if (c->ref && c->gen == *sh->generation) {
		const struct dcf_engine *e = sh->engine();
		sh->lock();
		if (e && c->ref && c->gen == *sh->generation)
			e->DC_CTX_free(c->ref);
		sh->unlock();
	}
	free(c->reget_data);
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

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long long now_us(void)
{
	return now_ns() / 1000;
}

/* The bound of an exchange starting at now, goimpl/latency's rule over
 * the answers the front saw: DCW_LAT_FACTOR times the slowest of the last
 * one to two windows, between the floor and the ceiling the engine gave;
 * DCW_LAT_FACTOR floors at least while those answers say little (none in
 * the last two windows, or they began less than a window ago), as the
 * engine waits for a server it has not heard enough of (dcctx's bound);
 * and at least the engine's own bound at the last handover, for two
 * windows.  Under mu. */
static long ctx_bound(const DC_CTX *c, long long now)
{
	long long b = c->floor_us;

	if (c->lat_at && now - c->lat_at <= 2 * DCW_LAT_WINDOW_US) {
		long long t = DCW_LAT_FACTOR * (c->lat_cur > c->lat_prev ? c->lat_cur : c->lat_prev);

		if (t > b)
			b = t;
	}
	if (!c->lat_at || now - c->lat_at > 2 * DCW_LAT_WINDOW_US || now - c->lat_first < DCW_LAT_WINDOW_US) {
		long long t = DCW_LAT_FACTOR * c->floor_us;

		if (t > b)
			b = t;
	}
	if (now - c->bound_at <= 2 * DCW_LAT_WINDOW_US && c->bound_us > b)
		b = c->bound_us;
	return (long)(b < c->ceil_us ? b : c->ceil_us);
}

/* An answer that took d, seen at now (latency.Bound.Observe).  Under mu. */
static void ctx_observe(DC_CTX *c, long long d, long long now)
{
	long long since = now - c->lat_start;

	if (!c->lat_at || now - c->lat_at > 2 * DCW_LAT_WINDOW_US)
		c->lat_first = now;
	if (since > 2 * DCW_LAT_WINDOW_US) {
		c->lat_prev = c->lat_cur = 0;
		c->lat_start = now;
	} else if (since > DCW_LAT_WINDOW_US) {
		c->lat_prev = c->lat_cur;
		c->lat_cur = 0;
		c->lat_start = now;
	}
	if (d > c->lat_cur)
		c->lat_cur = d;
	c->lat_at = now;
}

/* link before an engine operation: nothing handed over (what it stays
 * if the engine fails before it fills it). */
static long *link_init(long *link)
{
	link[DCF_LINK_FD] = -1;
	link[DCF_LINK_DROP] = 0;
	return link;
}

/* What the engine handed over with an operation (link, DCF_LINK_*). */
static void handed(DC_CTX *c, const long *link)
{
	if (link[DCF_LINK_DROP])
		pool_clear(c);
	if (link[DCF_LINK_FD] < 0)
		return;
	ctx_lock(c);
	c->bound_us = link[DCF_LINK_BOUND_US];
	c->bound_at = now_us();
	c->floor_us = link[DCF_LINK_FLOOR_US];
	c->ceil_us = link[DCF_LINK_CEIL_US];
	c->lifetime_ms = link[DCF_LINK_LIFETIME_MS];
	ctx_unlock(c);
	pool_put(c, (int)link[DCF_LINK_FD]);
}

/* The reget state after an operation: a GET's answer remembered here
 * (data), one the engine remembers (REGET_ENGINE), or none. */
static void reget_set(DC_CTX *c, int state, const unsigned char *id, unsigned int id_len,
		const unsigned char *data, size_t len)
{
	ctx_lock(c);
	c->reget = REGET_NONE;
	if (state == REGET_FRONT && id_len <= DCW_MAX_ID_LEN) {
		if (len > c->reget_cap) {
			unsigned char *n = realloc(c->reget_data, len);
			if (n) {
				c->reget_data = n;
				c->reget_cap = len;
			}
		}
		if (len <= c->reget_cap) {
			memcpy(c->reget_id, id, id_len);
			c->reget_id_len = id_len;
			memcpy(c->reget_data, data, len);
			c->reget_len = len;
			c->reget = REGET_FRONT;
		}
	} else if (state == REGET_ENGINE) {
		c->reget = REGET_ENGINE;
	}
	ctx_unlock(c);
}

enum { XCH_OK, XCH_NET, XCH_TIMEOUT, XCH_REJECT };

/* ---- dc_client's shared near map ---- */

/* A GET answered from the shared map, as the fast path answers one (the
 * data, *used, the reget state); 0 when the map cannot answer it.  A map
 * unleased for NM_STALE_NS is retired, and dc_client asked again. */
static int nm_get(DC_CTX *c, const unsigned char *id, unsigned int id_len, unsigned char *buf,
		unsigned int size, unsigned int *used)
{
	unsigned char data[DCW_NM_MAX_DATA];
	struct nm_ref *r;
	size_t len = 0;
	long long now;
	int hit, stale = 0, last;

	if (!__atomic_load_n(&c->nm, __ATOMIC_RELAXED))
		return 0;	/* no map: no lock taken */
	ctx_lock(c);
	if ((r = c->nm))
		r->refs++;
	ctx_unlock(c);
	if (!r)
		return 0;
	now = now_ns();
	hit = dcnm_lookup(&r->m, id, id_len, now, data, &len) && len >= DCW_MIN_GET_RESPONSE;
	if (!hit)
		stale = dcnm_stale(&r->m, now, NM_STALE_NS);
	ctx_lock(c);
	if (stale && c->nm == r) {
		/* asked again in a second, not at once: a map that stays
		 * unleased (no subscription) is asked for once a second */
		__atomic_store_n(&c->nm, NULL, __ATOMIC_RELAXED);
		r->retired = 1;
		c->nm_state = NM_NONE;
		c->nm_at = now / 1000 + NM_RETRY_US;
	}
	last = --r->refs == 0 && r->retired;
	ctx_unlock(c);
	if (last) {
		dcnm_unmap(&r->m);
		free(r);
	}
	if (!hit)
		return 0;
	if (buf)
		memcpy(buf, data, len < size ? len : size);
	if (used)
		*used = (unsigned int)len;
	reget_set(c, REGET_FRONT, id, id_len, data, len);
	return 1;
}

/* Whether this operation asks dc_client for its map first: a unix target,
 * no map in use, none asked for now, and the time to ask again come. */
static int nm_should_ask(DC_CTX *c)
{
	int ask = 0;

	if (__atomic_load_n(&c->nm, __ATOMIC_RELAXED) || strncmp(c->target, "UNIX:", 5) != 0)
		return 0;	/* a map in use: no lock taken */
	ctx_lock(c);
	if (!c->nm && (c->nm_state == NM_ASK || (c->nm_state == NM_NONE && now_us() >= c->nm_at))) {
		c->nm_state = NM_ASKING;
		ask = 1;
	}
	ctx_unlock(c);
	return ask;
}

/* Asks the server on fd for its map (dcnm_probe): XCH_OK when the
 * connection can carry the operation, else the failure, as the operation's
 * own exchange would have had it (*bound the bound it waited).  Without a
 * map it is asked again after NM_NONE_RETRY_US, after a failure in
 * NM_RETRY_US. */
static int nm_ask(DC_CTX *c, int fd, long *boundp)
{
	struct dcnm m = { NULL, 0, 0 };
	struct nm_ref *n = NULL;
	long long start = now_us();
	long bound;
	int r;

	ctx_lock(c);
	bound = ctx_bound(c, start);
	ctx_unlock(c);
	*boundp = bound;
	r = dcnm_probe(fd, __atomic_add_fetch(&c->uid, 1, __ATOMIC_RELAXED), start + bound, &m);
	if (r == DCNM_MAPPED && !(n = calloc(1, sizeof *n))) {
		dcnm_unmap(&m);
		r = DCNM_NONE;
	}
	if (n)
		n->m = m;
	ctx_lock(c);
	if (n) {
		__atomic_store_n(&c->nm, n, __ATOMIC_RELAXED);
		c->nm_state = NM_MAPPED;
	} else {
		c->nm_state = NM_NONE;
		c->nm_at = now_us() + (r == DCNM_NONE ? NM_NONE_RETRY_US : NM_RETRY_US);
	}
	ctx_unlock(c);
	return r == DCNM_TIMEOUT ? XCH_TIMEOUT : r == DCNM_FAILED ? XCH_NET : XCH_OK;
}

/* ---- the fast path's exchange ---- */

enum {
	FAST_NONE,	/* no connection fit: nothing was sent */
	FAST_DONE,	/* answered (m) */
	FAST_RESEND,	/* the connection died before the answer began; resend */
	FAST_FAILED	/* failed, the engine was told; not to be resent */
};

/* a request of this size or less, and the answer, live on the stack */
#define FAST_STACK 4096
#define FAST_BIG (DCW_MAX_MESSAGE + DCW_HEADER_SIZE)

struct fast_op {
	unsigned op;
	struct dcw_part parts[3];
	int nparts;
	unsigned char stack[FAST_STACK];
	unsigned char *buf;	/* stack, or big */
	unsigned char *big;	/* malloc'd FAST_BIG bytes, when needed */
	struct dcw_msg m;
	int fd;
	struct busy_fd busy;	/* fd, while the operation holds it */
	/* ADD: the caller's timeout, written to pre[0..4) once a connection
	 * is taken: one under 1000 ms means the lifetime handed over with the
	 * connections, perhaps by another thread just now */
	unsigned char *pre;
	unsigned long timeout;
};

/* An idle connection can carry the next request: nothing to read (the
 * engine's own check: a peer's close or stray bytes discard it). */
static int idle_alive(int fd)
{
	unsigned char b;
	ssize_t n;

	do
		n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}


/* ---- the front's own first connection ---- */

/* A positive decimal number of at most 32 bits, as the engine reads its
 * variables (goimpl/client/dcctx envDuration), else 0. */
static unsigned long long env_num(const char *name)
{
	const char *s = getenv(name), *d;
	unsigned long long v = 0;

	if (!s || !*s)
		return 0;
	for (d = s; *d; d++) {
		if (*d < '0' || *d > '9')
			return 0;
		v = v * 10 + (unsigned)(*d - '0');
		if (v > 0xffffffffull)
			return 0;
	}
	return v;
}

/* What a connection the front makes starts with, read once: the
 * engine's floor, ceiling and lifetime from the same variables; dial_ok 0
 * where the engine must make every connection (DISTCACHE_CTX=client,
 * fixed bounds). */
static struct {
	pthread_once_t once;
	int dial_ok;
	long floor_us, ceil_us, lifetime_ms;
} dial_env = { PTHREAD_ONCE_INIT, 0, 0, 0, 0 };

static void dial_env_read(void)
{
	const char *t = getenv("DISTCACHE_CTX");
	unsigned long long floor_ms = env_num(DCW_ENV_TIMEOUT), life_s = env_num(DCW_ENV_DEFAULT_LIFETIME);

	if (!floor_ms)
		floor_ms = DCW_DEFAULT_TIMEOUT_MS;
	if (!life_s)
		life_s = DCW_DEFAULT_LIFETIME_S;
	dial_env.floor_us = (long)(floor_ms * 1000);
	dial_env.ceil_us = DCW_MAX_TIMEOUT_FACTOR * dial_env.floor_us;
	dial_env.lifetime_ms = (long)(life_s * 1000);
	dial_env.dial_ok = !(t && strcmp(t, "client") == 0) && !env_num(DCW_ENV_CONNECT_TIMEOUT) &&
		!env_num(DCW_ENV_IO_TIMEOUT);
}

/* Whether the engine has a context in this generation: once it has, it
 * makes the connections (probation, its resend, its drops are its own). */
static int engine_ctx(DC_CTX *c)
{
	const struct dcf_shared *sh = dcf_shared_get();
	int has;

	sh->lock();
	has = c->ref && c->gen == *sh->generation;
	sh->unlock();
	return has;
}

/* A connection of the front's own for an operation of a context without
 * PERSISTENT to a unix socket, when its pool is empty and the engine has
 * no context in this generation (a forked Apache child's first lookup):
 * so a process whose operations all succeed never loads the engine (its
 * Go runtime: five threads and about 4 MB). It gets the engine's floor,
 * ceiling and lifetime, and so the bound the engine's first connection
 * has (ctx_bound: ten floors while no answers are known). Listed busy in b, as a taken
 * one; -1 when the front does not connect here or the connect failed (a
 * unix connect completes or fails at once): then the engine does the
 * operation, its connect included, as before. TCP targets are left to
 * the engine (its connect bound, TCP_NODELAY unless NAL's Nagle is on). */
static int dial(DC_CTX *c, struct busy_fd *b)
{
	struct sockaddr_un sa;
	const char *path = c->target + 5;
	int fd;

	pthread_once(&dial_env.once, dial_env_read);
	if (!dial_env.dial_ok || (c->flags & DCW_FLAG_PERSISTENT) || strncmp(c->target, "UNIX:", 5) != 0 ||
	    path[0] == '@' || strlen(path) >= sizeof sa.sun_path || engine_ctx(c))
		return -1;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	while (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		if (errno != EINTR) {
			/* refused, absent, or the listener's queue full (EAGAIN:
			 * a unix connect does not go on in the background) */
			close(fd);
			return -1;
		}
	}
	ctx_lock(c);
	pool_own(c);
	/* the engine's limits; ctx_bound waits DCW_LAT_FACTOR floors while
	 * no answers are known, as the engine's first connection does */
	c->floor_us = dial_env.floor_us;
	c->ceil_us = dial_env.ceil_us;
	c->lifetime_ms = dial_env.lifetime_ms;
	busy_link(c, b, fd);
	ctx_unlock(c);
	return fd;
}

/* Waits for fd (events) until *deadline, extending a wait that ended late
 * as the engine does (latency.Late, DCW_MAX_EXTENSIONS); 1 when ready,
 * 0 when the time is up, -1 on an error. */
static int wait_fd(int fd, short events, long long *deadline, long bound, int *ext)
{
	int final = 0;

	for (;;) {
		long long now = now_us(), rest = *deadline - now;
		struct pollfd p;
		struct timespec ts;
		int r;

		if (rest <= 0) {
			if (*ext < DCW_MAX_EXTENSIONS && now - *deadline > bound / DCW_LATE_DIVISOR) {
				(*ext)++;
				*deadline = now + bound;
				continue;
			}
			if (final)
				return 0;
			final = 1;
			rest = 0;
		}
		p.fd = fd;
		p.events = events;
		p.revents = 0;
		ts.tv_sec = rest / 1000000;
		ts.tv_nsec = (rest % 1000000) * 1000;
		r = ppoll(&p, 1, &ts, NULL);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r > 0)
			return 1;
	}
}

/* One exchange on f->fd: XCH_OK with f->m the answer, or a failure class;
 * *answered when bytes of an answer arrived. */
static int exchange(struct fast_op *f, uint32_t uid, long long start, long bound, int *answered)
{
	size_t len, off = 0, have = 0, cap;
	long long deadline = start + bound;
	int ext = 0;

	f->buf = f->stack;
	cap = FAST_STACK;
	len = 0;
	{
		size_t total = 0;
		int i;

		for (i = 0; i < f->nparts; i++)
			total += f->parts[i].n;
		if (total + (total / DCW_MAX_FRAME_DATA + 1) * DCW_HEADER_SIZE > FAST_STACK) {
			if (!f->big && !(f->big = malloc(FAST_BIG)))
				return XCH_NET;
			f->buf = f->big;
			cap = FAST_BIG;
		}
	}
	len = dcw_encode(f->buf, 0, uid, f->op, f->parts, f->nparts);
	if (len == 0)
		return XCH_REJECT;
	while (off < len) {
		ssize_t n = send(f->fd, f->buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int w = wait_fd(f->fd, POLLOUT, &deadline, bound, &ext);
			if (w > 0)
				continue;
			return w == 0 ? XCH_TIMEOUT : XCH_NET;
		}
		return XCH_NET;
	}
	/* wait before the first read: the server has rarely answered yet */
	{
		int w = wait_fd(f->fd, POLLIN, &deadline, bound, &ext);

		if (w == 0)
			return XCH_TIMEOUT;
		if (w < 0)
			return XCH_NET;
	}
	for (;;) {
		ssize_t n;
		int st, w;

		n = recv(f->fd, f->buf + have, cap - have, MSG_DONTWAIT);
		if (n > 0) {
			have += (size_t)n;
			*answered = 1;
			st = dcw_decode(f->buf, have, DCW_WANT_RESPONSES, &f->m);
			if (st == DCW_CORRUPT)
				return XCH_NET;
			if (st == DCW_DONE) {
				/* the answer to this request, and nothing more */
				if (f->m.uid != uid || f->m.op != f->op || f->m.used != have)
					return XCH_REJECT;
				return XCH_OK;
			}
			if (have < cap)
				continue;
			if (f->buf == f->big)
				return XCH_NET;	/* no valid message is this long */
			if (!f->big && !(f->big = malloc(FAST_BIG)))
				return XCH_NET;
			memcpy(f->big, f->buf, have);
			f->buf = f->big;
			cap = FAST_BIG;
			continue;
		}
		if (n == 0)
			return XCH_NET;	/* closed by the peer */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return XCH_NET;
		w = wait_fd(f->fd, POLLIN, &deadline, bound, &ext);
		if (w == 0)
			return XCH_TIMEOUT;
		if (w < 0)
			return XCH_NET;
	}
}

/* The fast path of one operation (see the top of the file). */
static int fast(DC_CTX *c, struct fast_op *f)
{
	int persistent = (c->flags & DCW_FLAG_PERSISTENT) != 0;
	long long start;
	long bound;
	int x, answered = 0;

	for (;;) {
		if ((f->fd = pool_take(c, &f->busy)) < 0) {
			if ((f->fd = dial(c, &f->busy)) < 0)
				return FAST_NONE;
			/* new: nothing to look at */
		} else if (!persistent && !idle_alive(f->fd)) {
			busy_end(c, &f->busy, 0);
			continue;
		}
		break;
	}
	/* the map first, as part of this operation's exchange: its failure
	 * is the operation's, nothing of it sent yet */
	if (nm_should_ask(c) && (x = nm_ask(c, f->fd, &bound)) != XCH_OK)
		goto failed;
	start = now_us();
	ctx_lock(c);
	bound = ctx_bound(c, start);
	if (f->pre) {
		uint32_t t = (uint32_t)(f->timeout < 1000 ? (unsigned long)c->lifetime_ms : f->timeout);

		f->pre[0] = (unsigned char)(t >> 24);
		f->pre[1] = (unsigned char)(t >> 16);
		f->pre[2] = (unsigned char)(t >> 8);
		f->pre[3] = (unsigned char)t;
	}
	ctx_unlock(c);
	x = exchange(f, __atomic_add_fetch(&c->uid, 1, __ATOMIC_RELAXED), start, bound, &answered);
	if (x == XCH_OK) {
		long long end = now_us();

		ctx_lock(c);
		ctx_observe(c, end - start, end);
		ctx_unlock(c);
		busy_end(c, &f->busy, 1);
		return FAST_DONE;
	}
failed:
	busy_end(c, &f->busy, 0);
	reget_set(c, REGET_NONE, NULL, 0, NULL, 0);
	if (x == XCH_REJECT)
		return FAST_FAILED;	/* the engine only closes such a connection */
	/* the others lead to the same, probably restarted, server */
	pool_clear(c);
	if (x == XCH_NET && (persistent ? (c->flags & DCW_FLAG_RETRY) != 0 : !answered))
		return FAST_RESEND;
	{
		const struct dcf_engine *e;
		dcf_ref r = ctx_ref(c, &e);

		if (r)
			e->DC_CTX_failed(r, x == XCH_TIMEOUT, (unsigned int)bound);
	}
	return FAST_FAILED;
}

static int id_ok(const unsigned char *id, unsigned int id_len)
{
	return id && id_len >= 1 && id_len <= MAX_ID_OR_DATA;
}

static void fast_init(struct fast_op *f, unsigned op, const unsigned char *id, unsigned int id_len)
{
	f->op = op;
	f->big = NULL;
	f->pre = NULL;
	f->parts[0].p = id;
	f->parts[0].n = id_len;
	f->nparts = 1;
}

/* The answer of ADD and REMOVE: done iff exactly DCW_RESULT_OK. */
static int result_ok(const struct dcw_msg *m)
{
	return m->len == 1 && m->payload[0] == DCW_RESULT_OK;
}

/* An ADD or a REMOVE done by the front (one-byte answers): 1 or 0 as the
 * engine would return, or -1 when the engine must do it, as *how says. */
static int fast_result(DC_CTX *c, struct fast_op *f, int *how)
{
	int r = -1;

	switch (fast(c, f)) {
	case FAST_DONE:
		reget_set(c, REGET_NONE, NULL, 0, NULL, 0);
		r = result_ok(&f->m);
		break;
	case FAST_FAILED:
		r = 0;
		break;
	case FAST_RESEND:
		*how = DCF_HOW_RESENT;
		break;
	}
	free(f->big);
	return r;
}

DCF_PUBLIC int DC_CTX_add_session(DC_CTX *c, const unsigned char *id, unsigned int id_len,
		const unsigned char *data, unsigned int data_len, unsigned long timeout)
{
	const struct dcf_engine *e;
	struct fast_op f;
	unsigned char pre[DCW_ADD_PREFIX];
	long link[DCF_LINK_N];
	int r, how = DCF_HOW_FIRST;
	dcf_ref ref;

	if (!c || !id_ok(id, id_len) || !data || data_len < 1 ||
	    8ul + id_len + data_len > MAX_ID_OR_DATA)
		return 0;
	fast_init(&f, DCW_OP_ADD, id, id_len);
	f.pre = pre;	/* pre[0..4): the timeout, in fast() */
	f.timeout = timeout;
	pre[4] = (unsigned char)(id_len >> 24);
	pre[5] = (unsigned char)(id_len >> 16);
	pre[6] = (unsigned char)(id_len >> 8);
	pre[7] = (unsigned char)id_len;
	f.parts[0].p = pre;
	f.parts[0].n = sizeof pre;
	f.parts[1].p = id;
	f.parts[1].n = id_len;
	f.parts[2].p = data;
	f.parts[2].n = data_len;
	f.nparts = 3;
	if ((r = fast_result(c, &f, &how)) >= 0)
		return r;
	if (!(ref = ctx_ref(c, &e)))
		return 0;
	r = e->DC_CTX_add_session(ref, id, id_len, data, data_len, timeout, how, link_init(link));
	reget_set(c, REGET_NONE, NULL, 0, NULL, 0);
	handed(c, link);
	return r;
}

DCF_PUBLIC int DC_CTX_remove_session(DC_CTX *c, const unsigned char *id, unsigned int id_len)
{
	const struct dcf_engine *e;
	struct fast_op f;
	long link[DCF_LINK_N];
	int r, how = DCF_HOW_FIRST;
	dcf_ref ref;

	if (!c || !id_ok(id, id_len))
		return 0;
	fast_init(&f, DCW_OP_REMOVE, id, id_len);
	if ((r = fast_result(c, &f, &how)) >= 0)
		return r;
	if (!(ref = ctx_ref(c, &e)))
		return 0;
	r = e->DC_CTX_remove_session(ref, id, id_len, how, link_init(link));
	reget_set(c, REGET_NONE, NULL, 0, NULL, 0);
	handed(c, link);
	return r;
}

DCF_PUBLIC int DC_CTX_get_session(DC_CTX *c, const unsigned char *id, unsigned int id_len,
		unsigned char *buf, unsigned int size, unsigned int *used)
{
	const struct dcf_engine *e;
	struct fast_op f;
	long link[DCF_LINK_N];
	int r, how = DCF_HOW_FIRST;
	dcf_ref ref;

	if (!c || !id_ok(id, id_len))
		return 0;
	if (!buf)
		size = 0;
	if (nm_get(c, id, id_len, buf, size, used))
		return 1;
	fast_init(&f, DCW_OP_GET, id, id_len);
	switch (fast(c, &f)) {
	case FAST_DONE:
		r = 0;
		if (f.m.len >= DCW_MIN_GET_RESPONSE) {
			if (buf)
				memcpy(buf, f.m.payload, f.m.len < size ? f.m.len : size);
			if (used)
				*used = (unsigned int)f.m.len;
			r = 1;
		}
		reget_set(c, r ? REGET_FRONT : REGET_NONE, id, id_len, f.m.payload, f.m.len);
		free(f.big);
		return r;
	case FAST_FAILED:
		free(f.big);
		return 0;
	case FAST_RESEND:
		how = DCF_HOW_RESENT;
		break;
	}
	free(f.big);
	if (!(ref = ctx_ref(c, &e)))
		return 0;
	r = e->DC_CTX_get_session(ref, id, id_len, buf, size, used, how, link_init(link));
	reget_set(c, r ? REGET_ENGINE : REGET_NONE, NULL, 0, NULL, 0);
	handed(c, link);
	return r;
}

DCF_PUBLIC int DC_CTX_reget_session(DC_CTX *c, const unsigned char *id, unsigned int id_len,
		unsigned char *buf, unsigned int size, unsigned int *used)
{
	const struct dcf_engine *e;
	dcf_ref r;
	int state, ok = 0;

	if (!c || !id_ok(id, id_len))
		return 0;
	ctx_lock(c);
	state = c->reget;
	if (state == REGET_FRONT && id_len == c->reget_id_len && memcmp(id, c->reget_id, id_len) == 0) {
		if (buf)
			memcpy(buf, c->reget_data, c->reget_len < size ? c->reget_len : size);
		if (used)
			*used = (unsigned int)c->reget_len;
		ok = 1;
	}
	ctx_unlock(c);
	if (state != REGET_ENGINE)
		return ok;
	if (!(r = ctx_ref(c, &e)))
		return 0;
	return e->DC_CTX_reget_session(r, id, id_len, buf, buf ? size : 0, used);
}

DCF_PUBLIC int DC_CTX_has_session(DC_CTX *c, const unsigned char *id, unsigned int id_len)
{
	const struct dcf_engine *e;
	struct fast_op f;
	long link[DCF_LINK_N];
	int r, how = DCF_HOW_FIRST;
	dcf_ref ref;

	if (!c || !id_ok(id, id_len))
		return -1;
	fast_init(&f, DCW_OP_HAVE, id, id_len);
	switch (fast(c, &f)) {
	case FAST_DONE:
		reget_set(c, REGET_NONE, NULL, 0, NULL, 0);
		if (f.m.len != 1)
			r = f.m.len > 1 ? 0 : -1;
		else
			r = f.m.payload[0] == DCW_RESULT_OK ? 1 : f.m.payload[0] == DCW_RESULT_NOTOK ? 0 : -1;
		free(f.big);
		return r;
	case FAST_FAILED:
		free(f.big);
		return -1;
	case FAST_RESEND:
		how = DCF_HOW_RESENT;
		break;
	}
	free(f.big);
	if (!(ref = ctx_ref(c, &e)))
		return -1;
	r = e->DC_CTX_has_session(ref, id, id_len, how, link_init(link));
	reget_set(c, REGET_NONE, NULL, 0, NULL, 0);
	handed(c, link);
	return r;
}
