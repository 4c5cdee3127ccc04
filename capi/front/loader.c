/*
 * The engine loader, part of libnal.so.1 (and so one per process, whichever
 * front libraries a program links).
 *
 * The engine, a Go c-shared library, is dlopen()ed (RTLD_LOCAL) on the first
 * call that needs it, never at load time.  A Go runtime does not survive
 * fork(), so an atfork child handler bumps a generation counter; a child whose
 * parent had an engine mapped loads a fresh copy of the file through
 * memfd_create() + dlopen("/proc/self/fd/N") (dlopen of the same path would
 * return the parent's, now dead, instance).
 *
 * The engine file is $DISTCACHE_ENGINE if set, else distcache/ENGINE_NAME next
 * to the directory libnal.so.1 was loaded from (build/lib in the build tree,
 * $(libdir) after make install).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "front.h"

#define ENGINE_NAME "libdistcache-engine.so"

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t obj_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned long generation = 1;
static struct dcf_engine table;
static const struct dcf_engine *live;	/* loaded in this generation */
static unsigned long failed_gen;	/* generation whose load failed */
static int mapped;			/* an engine image exists in this process */

/* Every tracked handle, oldest first (under obj_mu). */
static struct dcf_obj *reg_head, *reg_tail;
static int reg_count;

/* The snapshot taken by the prepare handler: kept by the child until its
 * engine is loaded, then restored (snap_objs[i] is NULLed if the handle is
 * freed in between). */
static char *snap;
static size_t snap_len;
static struct dcf_obj **snap_objs;
static int snap_n;
static int snap_fresh;	/* taken by this prepare (the parent drops it) */

static void stale(void);

static void snap_drop(void)
{
	free(snap);
	free(snap_objs);
	snap = NULL;
	snap_objs = NULL;
	snap_n = 0;
}

static void track(struct dcf_obj *o, int kind)
{
	pthread_mutex_lock(&obj_mu);
	o->kind = kind;
	o->next = NULL;
	o->prev = reg_tail;
	if (reg_tail)
		reg_tail->next = o;
	else
		reg_head = o;
	reg_tail = o;
	reg_count++;
	pthread_mutex_unlock(&obj_mu);
}

static void untrack(struct dcf_obj *o)
{
	int i;

	pthread_mutex_lock(&obj_mu);
	if (o->prev)
		o->prev->next = o->next;
	else
		reg_head = o->next;
	if (o->next)
		o->next->prev = o->prev;
	else
		reg_tail = o->prev;
	o->kind = 0;
	reg_count--;
	for (i = 0; i < snap_n; i++)
		if (snap_objs[i] == o)
			snap_objs[i] = NULL;
	pthread_mutex_unlock(&obj_mu);
}

/* In the prepare handler (both locks held): snapshot the handles of this
 * generation.  On failure the child finds the objects stale (they fail
 * cleanly there). */
static void take_snapshot(void)
{
	struct dcf_obj *o;
	int *kinds, n = 0;
	dcf_ref *refs;

	if (!live)
		return;	/* no engine here: a pending snapshot passes on as it is */
	snap_drop();
	/* DISTCACHE_NO_FORK_RESTORE: children get no objects (tests use it to
	 * check that unrestorable objects fail cleanly). */
	if (reg_count == 0 || getenv("DISTCACHE_NO_FORK_RESTORE"))
		return;
	kinds = malloc(sizeof *kinds * (size_t)reg_count);
	refs = malloc(sizeof *refs * (size_t)reg_count);
	snap_objs = malloc(sizeof *snap_objs * (size_t)reg_count);
	if (!kinds || !refs || !snap_objs)
		goto out;
	for (o = reg_head; o; o = o->next)
		if (o->ref && o->gen == generation) {
			kinds[n] = o->kind;
			refs[n] = o->ref;
			snap_objs[n++] = o;
		}
	if (n > 0 && live->snapshot(kinds, refs, n, &snap, &snap_len)) {
		snap_n = n;
		snap_fresh = 1;
	}
	else
		snap = NULL;
out:
	free(kinds);
	free(refs);
	if (!snap_n) {
		free(snap_objs);
		snap_objs = NULL;
	}
}

/* In the child, right after its engine is loaded (load_mu held). */
static void restore_snapshot(const struct dcf_engine *e)
{
	dcf_ref *nr;
	int i, lost = 0;

	if (!snap_n)
		return;
	nr = calloc((size_t)snap_n, sizeof *nr);
	if (nr)
		e->restore(snap, snap_len, nr, snap_n);
	pthread_mutex_lock(&obj_mu);
	for (i = 0; i < snap_n; i++) {
		struct dcf_obj *o = snap_objs[i];
		if (!o)
			continue;
		if (!nr || !nr[i]) {
			lost++;
			continue;
		}
		o->ref = nr[i];
		o->gen = generation;
		if (o->kind == DCF_K_CONNECTION) {
			NAL_CONNECTION *c = (NAL_CONNECTION *)(void *)o;
			dcf_ref rd = NULL, sd = NULL;
			e->conn_bufs(nr[i], &rd, &sd);
			c->rd.o.ref = rd;
			c->sd.o.ref = sd;
			c->rd.o.gen = c->sd.o.gen = generation;
		}
	}
	pthread_mutex_unlock(&obj_mu);
	if (lost)
		stale();
	free(nr);
	snap_drop();
}

/* Descriptors the child closes at once: the parent engine's pooled
 * persistent DC_CTX connections (the child's engine makes its own). */
static int child_close[256];
static int child_close_n;

static void fork_prepare(void)
{
	pthread_mutex_lock(&load_mu);
	pthread_mutex_lock(&obj_mu);
	take_snapshot();
	child_close_n = live ? live->fork_fds(child_close, 256) : 0;
}

static void fork_parent(void)
{
	if (snap_fresh)
		snap_drop();
	snap_fresh = 0;
	pthread_mutex_unlock(&obj_mu);
	pthread_mutex_unlock(&load_mu);
}

static void fork_child(void)
{
	int i;

	for (i = 0; i < child_close_n; i++)
		close(child_close[i]);
	child_close_n = 0;
	generation++;
	live = NULL;
	snap_fresh = 0;
	pthread_mutex_unlock(&obj_mu);
	pthread_mutex_unlock(&load_mu);
}

__attribute__((constructor)) static void dcf_loader_init(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static int engine_path(char *out, size_t n)
{
	const char *env = getenv("DISTCACHE_ENGINE");
	Dl_info info;
	const char *slash;

	if (env && *env)
		return snprintf(out, n, "%s", env) < (int)n;
	if (!dladdr((void *)&dcf_loader_init, &info) || !info.dli_fname)
		return 0;
	slash = strrchr(info.dli_fname, '/');
	if (!slash)
		return snprintf(out, n, "distcache/%s", ENGINE_NAME) < (int)n;
	return snprintf(out, n, "%.*s/distcache/%s", (int)(slash - info.dli_fname),
			info.dli_fname, ENGINE_NAME) < (int)n;
}

/* A private copy of the file, so the dynamic linker maps a new instance. */
static void *open_copy(const char *path, char *err, size_t errn)
{
	char buf[65536], name[64];
	int src, fd;
	ssize_t r;
	void *h;

	src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0) {
		snprintf(err, errn, "%s: %s", path, strerror(errno));
		return NULL;
	}
	fd = memfd_create("distcache-engine", MFD_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errn, "memfd_create: %s", strerror(errno));
		close(src);
		return NULL;
	}
	while ((r = read(src, buf, sizeof buf)) > 0) {
		char *p = buf;
		while (r > 0) {
			ssize_t w = write(fd, p, (size_t)r);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				snprintf(err, errn, "copying %s: %s", path, strerror(errno));
				close(src);
				close(fd);
				return NULL;
			}
			p += w;
			r -= w;
		}
	}
	close(src);
	snprintf(name, sizeof name, "/proc/self/fd/%d", fd);
	h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		snprintf(err, errn, "%s", dlerror());
	/* The mapping keeps the file alive; the descriptor is not needed. */
	close(fd);
	return h;
}

static const struct dcf_engine *load(void)
{
	char path[PATH_MAX], err[PATH_MAX + 256];
	struct dcf_engine t;
	void *h;

	err[0] = 0;
	if (!engine_path(path, sizeof path)) {
		snprintf(err, sizeof err, "cannot locate the engine");
		goto fail;
	}
	if (!mapped) {
		h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!h)
			snprintf(err, sizeof err, "%s", dlerror());
	} else {
		h = open_copy(path, err, sizeof err);
	}
	if (!h)
		goto fail;
	mapped = 1;
#define DCF_X(r, n, a) \
	*(void **)&t.n = dlsym(h, "dce_" #n); \
	if (!t.n) { snprintf(err, sizeof err, "%s: no symbol dce_%s", path, #n); goto fail; }
	DCF_ENGINE_FUNCS(DCF_X)
#undef DCF_X
	table = t;
	restore_snapshot(&table);
	return &table;
fail:
	fprintf(stderr, "distcache: cannot load the engine: %s\n", err);
	return NULL;
}

static const struct dcf_engine *get_engine(void)
{
	const struct dcf_engine *e = __atomic_load_n(&live, __ATOMIC_ACQUIRE);

	if (e)
		return e;
	pthread_mutex_lock(&load_mu);
	if (!live && failed_gen != generation) {
		e = load();
		if (e)
			__atomic_store_n(&live, e, __ATOMIC_RELEASE);
		else
			failed_gen = generation;
	}
	e = live;
	pthread_mutex_unlock(&load_mu);
	return e;
}

static void stale(void)
{
	static unsigned long said;

	if (said != generation) {
		said = generation;
		fprintf(stderr, "distcache: an object created before fork() could not be "
			"restored in this process; calls on it fail\n");
	}
}

static void obj_lock(void)
{
	pthread_mutex_lock(&obj_mu);
}

static void obj_unlock(void)
{
	pthread_mutex_unlock(&obj_mu);
}

static const struct dcf_shared shared = {
	DCF_SHARED_VERSION, get_engine, &generation, obj_lock, obj_unlock, track, untrack, stale,
};

DCF_HIDDEN const struct dcf_shared *dcf_shared_get(void)
{
	return &shared;
}
