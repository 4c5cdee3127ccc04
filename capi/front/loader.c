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

#include "engine.h"

#define ENGINE_NAME "libdistcache-engine.so"

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t obj_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned long generation = 1;
static struct dcf_engine table;
static const struct dcf_engine *live;	/* loaded in this generation */
static unsigned long failed_gen;	/* generation whose load failed */
static int mapped;			/* an engine image exists in this process */

static void fork_prepare(void)
{
	pthread_mutex_lock(&load_mu);
	pthread_mutex_lock(&obj_mu);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&obj_mu);
	pthread_mutex_unlock(&load_mu);
}

static void fork_child(void)
{
	generation++;
	live = NULL;
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

static void obj_lock(void)
{
	pthread_mutex_lock(&obj_mu);
}

static void obj_unlock(void)
{
	pthread_mutex_unlock(&obj_mu);
}

static const struct dcf_shared shared = {
	DCF_SHARED_VERSION, get_engine, &generation, obj_lock, obj_unlock,
};

DCF_HIDDEN const struct dcf_shared *dcf_shared_get(void)
{
	return &shared;
}
