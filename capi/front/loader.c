/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine loader, part of libnal.so.1 (and so one per process, whichever
 * front libraries a program links).
 *
 * The engine, a Go c-shared library, is dlopen()ed (RTLD_LOCAL) on the first
 * call that needs it, never at load time.  A Go runtime does not survive
 * fork(), so an atfork child handler bumps a generation counter; a child whose
 * parent had an engine mapped loads a fresh copy of the file through
 * memfd_create() + dlopen("/proc/self/fd/N") (dlopen of the same path would
 * return the parent's, now dead, instance), one copy per parent, shared by
 * its children (kid_copy).
 *
 * The engine file is $DISTCACHE_ENGINE if set, else distcache/ENGINE_NAME next
 * to the directory libnal.so.1 was loaded from (build/lib in the build tree,
 * $(libdir) after make install), as seen when the library is loaded.
 *
 * chroot(): a process may jail itself before its first call (or in a child
 * of a parent that used the library), and then the path no longer names the
 * file.  So at load time the loader also opens the engine's directory
 * (O_PATH, close-on-exec) and keeps it: when the path fails, the engine is
 * opened relative to that directory (dlopen("./NAME") with the working
 * directory moved there for the call and back, the one moment the working
 * directory changes), and a child's private copy is read through it.  The
 * copy is mapped through /proc/self/fd; without /proc in the jail that one
 * case fails with a line naming the remedy.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <stdint.h>
#include <unistd.h>

#define DCF_LIBNAL 1	/* front.h: the loader's state read in place */
#include "front.h"

#ifndef DCF_VERSION
#define DCF_VERSION "(unknown version)"
#endif
#define ENGINE_NAME DCF_ENGINE_FILE

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
/*
 * The object lock guards the registry below (and a DC_CTX's engine side).
 * It is held for a few memory operations on every new and free, where a
 * pthread mutex (an atomic to take it, another to give it back, and two
 * calls) cost as much as the rest of a new/free pair: so a spin lock (one
 * atomic exchange to take, a plain store to release) that yields the CPU
 * after a short spin, for the rare long holder (a fork's snapshot, the first
 * use of a DC_CTX).
 */
static int obj_mu;

static void obj_acquire(void)
{
	int spins = 0;

	while (__atomic_exchange_n(&obj_mu, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&obj_mu, __ATOMIC_RELAXED)) {
			if (++spins < 100) {
#if defined(__x86_64__) || defined(__i386__)
				__builtin_ia32_pause();
#endif
			} else {
				sched_yield();
			}
		}
}

static void obj_release(void)
{
	__atomic_store_n(&obj_mu, 0, __ATOMIC_RELEASE);
}
/* The process generation (1 + the forks since the library was loaded) and
 * the engine loaded in it: libnal's own files read them in place (front.h,
 * DCF_LIBNAL), the other two libraries through struct dcf_shared. */
DCF_HIDDEN volatile unsigned long dcf_generation = 1;
static struct dcf_engine table;
DCF_HIDDEN const struct dcf_engine *dcf_live_engine;	/* loaded in this generation */
static unsigned long failed_gen;	/* generation whose load failed */
static int mapped;			/* an engine image exists in this process */

/*
 * The registry of live handles (under obj_mu): every object the front
 * returned and has not freed, with its kind, in an open-addressing hash set
 * keyed by address.  A free looks its argument up before touching it, so a
 * pointer the library never returned (httpd's mod_socache_dc passes an
 * uninitialised one to DC_CTX_free) is ignored without being dereferenced.
 * The fork snapshot walks it too.  It grows as needed: no fixed limit.
 */
struct reg_slot {
	const void *p;	/* NULL: empty; &reg_tomb: deleted */
	int kind;
};
static struct reg_slot *reg;
static size_t reg_cap, reg_used, reg_tombs;
static int reg_count;	/* live objects with an engine side (not DC_CTX) */
static const char reg_tomb;

/* The snapshot taken by the prepare handler: kept by the child until its
 * engine is loaded, then restored (snap_objs[i] is NULLed if the handle is
 * freed in between). */
static char *snap;
static size_t snap_len;
static struct dcf_obj **snap_objs;
static int snap_n;
static int snap_fresh;	/* taken by this prepare (the parent drops it) */

static void stale(void);
static void kid_copy_make(void);

static void snap_drop(void)
{
	free(snap);
	free(snap_objs);
	snap = NULL;
	snap_objs = NULL;
	snap_n = 0;
}

static size_t reg_hash(const void *p)
{
	uint64_t h = (uint64_t)(uintptr_t)p;

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (size_t)h;
}

/* The slot holding p, or NULL. */
static struct reg_slot *reg_find(const void *p)
{
	size_t i, n;

	if (!reg_cap || !p)
		return NULL;
	for (i = reg_hash(p) & (reg_cap - 1), n = 0; n < reg_cap; i = (i + 1) & (reg_cap - 1), n++) {
		if (reg[i].p == p)
			return &reg[i];
		if (!reg[i].p)
			return NULL;
	}
	return NULL;
}

static void reg_put(struct reg_slot *tab, size_t cap, const void *p, int kind)
{
	size_t i = reg_hash(p) & (cap - 1);

	while (tab[i].p && tab[i].p != &reg_tomb)
		i = (i + 1) & (cap - 1);
	tab[i].p = p;
	tab[i].kind = kind;
}

/* Room for one more entry, at most half the slots in use (live or deleted). */
static int reg_room(void)
{
	struct reg_slot *n;
	size_t cap, i;

	if ((reg_used + reg_tombs + 1) * 2 <= reg_cap)
		return 1;
	/* rebuilt at most a quarter full (deleted slots dropped) */
	cap = 64;
	while ((reg_used + 1) * 4 > cap)
		cap *= 2;
	n = calloc(cap, sizeof *n);
	if (!n)
		return 0;
	for (i = 0; i < reg_cap; i++)
		if (reg[i].p && reg[i].p != &reg_tomb)
			reg_put(n, cap, reg[i].p, reg[i].kind);
	free(reg);
	reg = n;
	reg_cap = cap;
	reg_tombs = 0;
	return 1;
}

static int track(const void *p, int kind)
{
	int ok;

	obj_acquire();
	ok = reg_room();
	if (ok) {
		reg_put(reg, reg_cap, p, kind);
		reg_used++;
		if (kind != DCF_K_CTX)
			reg_count++;
	}
	obj_release();
	return ok;
}

/* Say once per process that a free was given a foreign pointer. */
static void foreign(int kind)
{
	static int said;
	static const char *const names[DCF_K_MAX + 1] = DCF_KIND_NAMES;
	const char *name = kind > 0 && kind <= DCF_K_MAX && names[kind] ? names[kind] : "?";

	if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
		fprintf(stderr, "distcache: a %s free was given a pointer that is not a live object "
			"of this library; ignored\n", name);
}

static int live_obj(const void *p, int kind)
{
	struct reg_slot *s;
	int ok;

	obj_acquire();
	s = reg_find(p);
	ok = s && s->kind == kind;
	obj_release();
	if (!ok)
		foreign(kind);
	return ok;
}

/* Remove slot s, holding p of this kind (obj_mu held). */
static void reg_remove(struct reg_slot *s, const void *p, int kind)
{
	int i;

	s->p = &reg_tomb;
	reg_used--;
	reg_tombs++;
	/* A deleted slot before an empty one ends no probe chain: empty it, and
	 * the deleted ones before it (so that new/free pairs leave no trail). */
	if (!reg[(size_t)(s - reg + 1) & (reg_cap - 1)].p) {
		size_t j = (size_t)(s - reg);
		while (reg[j].p == &reg_tomb) {
			reg[j].p = NULL;
			reg_tombs--;
			j = (j - 1) & (reg_cap - 1);
		}
	}
	if (kind != DCF_K_CTX)
		reg_count--;
	for (i = 0; i < snap_n; i++)
		if (snap_objs[i] == p)
			snap_objs[i] = NULL;
}

/* With the registry lock held: unregister p if it is a live handle of
 * this kind and say 1; else release the lock, report p and say 0. */
static int reg_take(const void *p, int kind)
{
	struct reg_slot *s = reg_find(p);

	if (!s || s->kind != kind) {
		obj_release();
		foreign(kind);
		return 0;
	}
	reg_remove(s, p, kind);
	return 1;
}

static int forget(const void *p, int kind)
{
	obj_acquire();
	if (!reg_take(p, kind))
		return 0;
	obj_release();
	return 1;
}

/*
 * libnal's handles (the new and free forms, NAL_ADDRESS and NAL_BUFFER):
 * a freed one waits in a spare list for the next new of its kind, taken
 * and given back inside the critical sections that register and forget it
 * anyway, so a new/free pair costs no malloc and free.  Off under
 * AddressSanitizer (a use after free of a handle is still reported).  Every
 * spare is a malloc'd block: a handle may still be released with free()
 * (a plug's connection, dc_client.c).
 */
#if defined(__SANITIZE_ADDRESS__)
#define SPARE_MAX 0
#else
#define SPARE_MAX 64
#endif
/* by kind: every handle of a kind has its size */
static int spare_n[DCF_K_MAX + 1];
static void *spare[DCF_K_MAX + 1][SPARE_MAX + 1];

static void *spare_take(int kind)
{
	return spare_n[kind] > 0 ? spare[kind][--spare_n[kind]] : NULL;
}

static int spare_give(void *p, int kind)
{
	if (SPARE_MAX == 0 || spare_n[kind] >= SPARE_MAX)
		return 0;
	spare[kind][spare_n[kind]++] = p;
	return 1;
}

/* A zeroed handle of n bytes registered as kind (a spare if there is one),
 * or NULL. */
DCF_HIDDEN void *dcf_hnew(size_t n, int kind)
{
	struct dcf_obj *o;

	obj_acquire();
	if ((o = spare_take(kind))) {
		memset(o, 0, n);
		o->kind = kind;
		if (reg_room()) {
			reg_put(reg, reg_cap, o, kind);
			reg_used++;
			reg_count++;
		} else {
			spare_give(o, kind);
			o = NULL;
		}
		obj_release();
		return o;
	}
	obj_release();
	if (!(o = dcf_alloc(n)))
		return NULL;
	if (!dcf_track(o, kind)) {
		free(o);
		return NULL;
	}
	return o;
}

/* Unregister p if it is a live handle of this kind, copy its n bytes to
 * copy, release it and say 1; else 0 (as dcf_forget: p is not read). */
DCF_HIDDEN int dcf_hfree(const void *p, int kind, void *copy, size_t n)
{
	int kept;

	obj_acquire();
	if (!reg_take(p, kind))
		return 0;
	memcpy(copy, p, n);
	kept = spare_give((void *)p, kind);
	obj_release();
	if (!kept)
		free((void *)p);
	return 1;
}

/*
 * Late frees (dcf_free_later): the engine objects of freed address and
 * buffer handles wait here and go to the engine LATER_MAX at a time, so a
 * new/use/free cycle costs a fraction of a crossing for its free.  The
 * storage they hold waits with them, LATER_BYTES at most (then they go at
 * once): a batch holds back little memory that the next buffer could have
 * reused.  They belong to the engine of their generation: a child drops
 * them (that engine is gone; what they held stays unreachable there).
 */
#define LATER_MAX 64
#define LATER_BYTES (64 * 1024)
static int later_kind[LATER_MAX];
static dcf_ref later_ref[LATER_MAX];
static int later_n;
static unsigned long later_bytes;

DCF_HIDDEN void dcf_free_later(int kind, dcf_ref r, unsigned int bytes)
{
	int kinds[LATER_MAX], n = 0;
	dcf_ref refs[LATER_MAX];
	unsigned long gen;
	const struct dcf_engine *e;

	obj_acquire();
	later_kind[later_n] = kind;
	later_ref[later_n++] = r;
	later_bytes += bytes;
	if (later_n == LATER_MAX || later_bytes >= LATER_BYTES) {
		n = later_n;
		memcpy(kinds, later_kind, sizeof kinds[0] * (size_t)n);
		memcpy(refs, later_ref, sizeof refs[0] * (size_t)n);
		later_n = 0;
		later_bytes = 0;
	}
	gen = dcf_generation;
	obj_release();
	e = __atomic_load_n(&dcf_live_engine, __ATOMIC_ACQUIRE);
	if (n && e && gen == dcf_generation)
		e->free_batch(kinds, refs, n);
}

/* In the prepare handler (both locks held): snapshot the handles of this
 * generation.  On failure the child finds the objects stale (they fail
 * cleanly there). */
static void take_snapshot(void)
{
	struct dcf_obj *o;
	int *kinds, n = 0;
	dcf_ref *refs;
	size_t i;

	if (!dcf_live_engine)
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
	for (i = 0; i < reg_cap; i++) {
		if (!reg[i].p || reg[i].p == &reg_tomb || reg[i].kind == DCF_K_CTX)
			continue;
		o = (struct dcf_obj *)(void *)reg[i].p;
		if (o->ref && o->gen == dcf_generation && n < reg_count) {
			kinds[n] = reg[i].kind;
			refs[n] = o->ref;
			snap_objs[n++] = o;
		}
	}
	if (n > 0 && dcf_live_engine->snapshot(kinds, refs, n, &snap, &snap_len)) {
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
	obj_acquire();
	for (i = 0; i < snap_n; i++) {
		struct dcf_obj *o = snap_objs[i];
		if (!o)
			continue;
		if (!nr || !nr[i]) {
			lost++;
			continue;
		}
		o->ref = nr[i];
		o->gen = dcf_generation;
		if (o->kind == DCF_K_CONNECTION) {
			NAL_CONNECTION *c = (NAL_CONNECTION *)(void *)o;
			dcf_ref rd = NULL, sd = NULL;
			e->conn_bufs(nr[i], &rd, &sd);
			c->rd.o.ref = rd;
			c->sd.o.ref = sd;
			c->rd.o.gen = c->sd.o.gen = dcf_generation;
		}
	}
	obj_release();
	if (lost)
		stale();
	free(nr);
	snap_drop();
}

/* Descriptors the child closes at once: the parent engine's pooled
 * persistent DC_CTX connections (the child's engine makes its own). */
static int *child_close;
static int child_close_n, child_close_cap;

static void fork_prepare(void)
{
	pthread_mutex_lock(&load_mu);
	obj_acquire();
	take_snapshot();
	if (dcf_live_engine)
		kid_copy_make();
	child_close_n = dcf_live_engine ? dcf_live_engine->fork_fds(child_close, child_close_cap) : 0;
	if (child_close_n > child_close_cap) {
		int *n = realloc(child_close, sizeof *n * (size_t)child_close_n);
		if (n) {
			child_close = n;
			child_close_cap = child_close_n;
			child_close_n = dcf_live_engine->fork_fds(child_close, child_close_cap);
		}
		if (child_close_n > child_close_cap)
			child_close_n = child_close_cap;	/* out of memory: the rest stay open */
	}
}

static void fork_parent(void)
{
	if (dcf_live_engine)
		dcf_live_engine->fork_parent();
	if (snap_fresh)
		snap_drop();
	snap_fresh = 0;
	obj_release();
	pthread_mutex_unlock(&load_mu);
}

static void fork_child(void)
{
	int i;

	for (i = 0; i < child_close_n; i++)
		close(child_close[i]);
	child_close_n = 0;
	dcf_generation++;
	dcf_live_engine = NULL;
	later_n = 0;
	later_bytes = 0;
	snap_fresh = 0;
	obj_release();
	pthread_mutex_unlock(&load_mu);
}

/* The engine's path, its file name, and its directory kept open (-1 if it
 * could not be opened), with the identity it had when opened. */
static char eng_path[PATH_MAX];
static int eng_path_ok;
static const char *eng_name;
static int eng_dir = -1;
static dev_t eng_dev;
static ino_t eng_ino;

static int engine_path(char *out, size_t n);

/* fd, with its identity recorded (a program may close descriptors it does
 * not know, and the number be reused); -1 (fd closed) if it has none. */
static int keep_identity(int fd, dev_t *dev, ino_t *ino)
{
	struct stat st;

	if (fd >= 0 && fstat(fd, &st) == 0) {
		*dev = st.st_dev;
		*ino = st.st_ino;
		return fd;
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

__attribute__((constructor)) static void dcf_loader_init(void)
{
	char dir[PATH_MAX];
	const char *slash;

	pthread_atfork(fork_prepare, fork_parent, fork_child);
	eng_path_ok = engine_path(eng_path, sizeof eng_path);
	if (!eng_path_ok)
		return;
	slash = strrchr(eng_path, '/');
	eng_name = slash ? slash + 1 : eng_path;
	if (slash)
		snprintf(dir, sizeof dir, "%.*s", slash == eng_path ? 1 : (int)(slash - eng_path), eng_path);
	else
		snprintf(dir, sizeof dir, ".");
	eng_dir = keep_identity(open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC), &eng_dev, &eng_ino);
}

/* The kept directory, if the descriptor is still the one we opened (a
 * program may close descriptors it does not know about). */
static int dir_ok(void)
{
	struct stat st;

	return eng_dir >= 0 && fstat(eng_dir, &st) == 0 && st.st_dev == eng_dev && st.st_ino == eng_ino;
}

/* dlopen the engine by name inside the kept directory. */
static void *open_in_dir(char *err, size_t errn)
{
	char rel[NAME_MAX + 3];
	int cwd;
	void *h;

	snprintf(rel, sizeof rel, "./%s", eng_name);
	cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0 || fchdir(eng_dir) != 0) {
		if (cwd >= 0)
			close(cwd);
		return NULL;
	}
	h = dlopen(rel, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		snprintf(err, errn, "%s (opened in its directory kept from load time)", dlerror());
	if (fchdir(cwd) != 0)
		snprintf(err, errn, "cannot return to the working directory: %s", strerror(errno));
	close(cwd);
	return h;
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

/*
 * A copy of the engine file in a memfd, so that the dynamic linker maps a
 * new instance (a dlopen of the file already loaded would return the dead
 * one).  A process that forks with an engine loaded makes one copy, at its
 * first fork, for all its children (kid_copy, inherited): they map the same
 * pages, instead of a private 3.5 MB copy each.  A child whose engine comes
 * from that copy cannot use it for its own children (for them it is the
 * loaded file), so it closes it once loaded and makes its own at its first
 * fork.  A child that finds no usable inherited copy (a program may close
 * descriptors it does not know) makes a private one, as it did before.
 */
static int kid_copy = -1;
static dev_t kid_dev;
static ino_t kid_ino;

static int kid_copy_ok(void)
{
	struct stat st;

	return kid_copy >= 0 && fstat(kid_copy, &st) == 0 && st.st_dev == kid_dev && st.st_ino == kid_ino;
}

/* A memfd holding the engine file, or -1 (err says why). */
static int copy_file(const char *path, char *err, size_t errn)
{
	char buf[65536];
	int src, fd;
	ssize_t r;

	src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0 && dir_ok())
		src = openat(eng_dir, eng_name, O_RDONLY | O_CLOEXEC);
	if (src < 0) {
		snprintf(err, errn, "%s: %s", path, strerror(errno));
		return -1;
	}
	fd = memfd_create("distcache-engine", MFD_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errn, "memfd_create: %s", strerror(errno));
		close(src);
		return -1;
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
				return -1;
			}
			p += w;
			r -= w;
		}
	}
	close(src);
	return fd;
}

/* In the prepare handler, with an engine loaded: the copy for the children. */
static void kid_copy_make(void)
{
	char err[PATH_MAX + 64];

	if (kid_copy_ok() || !eng_path_ok)
		return;
	kid_copy = keep_identity(copy_file(eng_path, err, sizeof err), &kid_dev, &kid_ino);
}

/* dlopen the copy: the parent's copy for its children if there is one. */
static void *open_copy(const char *path, char *err, size_t errn)
{
	char name[64];
	int fd, shared = kid_copy_ok();
	void *h;

	fd = shared ? kid_copy : copy_file(path, err, errn);
	if (fd < 0)
		return NULL;
	snprintf(name, sizeof name, "/proc/self/fd/%d", fd);
	h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (!h && access("/proc/self/fd", F_OK) != 0)
		snprintf(err, errn, "this process needs its own copy of the engine (its parent had "
			"one loaded before fork()), mapped through /proc/self/fd, and /proc is not "
			"mounted here (a chroot?): mount /proc inside the chroot, or make no library "
			"call in the parent before it forks");
	else if (!h)
		snprintf(err, errn, "%s", dlerror());
	/* The mapping keeps the file alive; the descriptor is not needed, and
	 * the parent's copy is this process's engine now, not its children's. */
	close(fd);
	if (shared)
		kid_copy = -1;
	return h;
}

/*
 * SIGPIPE.  A Go runtime in a c-shared library installs a handler for
 * SIGPIPE even where the program ignores the signal (it then forwards the
 * signals of threads that are not Go's to the program's disposition,
 * SIG_IGN: nothing).  A server that ignores SIGPIPE and writes to clients
 * that went away (Apache, whose every TLS connection a client closes first
 * ends in a write that fails with EPIPE) then takes a signal delivery, Go's
 * handler and a sigreturn per such write: one per resumed handshake under
 * openssl s_time.  So once the runtime is up (its first exported call has
 * returned: its handlers are in place), a disposition of SIG_IGN the
 * program had before the load is put back; nothing changes for a program
 * that did not ignore the signal.  With SIGPIPE ignored, a write of the
 * engine's to a closed socket fails with EPIPE, as the engine expects
 * (it writes with MSG_NOSIGNAL anyway).
 */
static void sigpipe_before(struct sigaction *old)
{
	memset(old, 0, sizeof *old);
	if (sigaction(SIGPIPE, NULL, old) != 0)
		old->sa_handler = SIG_DFL;
}

static void sigpipe_after(const struct sigaction *old)
{
	if (!(old->sa_flags & SA_SIGINFO) && old->sa_handler == SIG_IGN)
		sigaction(SIGPIPE, old, NULL);
}

static const struct dcf_engine *load(void)
{
	char path[PATH_MAX], err[PATH_MAX + 256];
	struct dcf_engine t;
	struct sigaction pipe_was;
	void *h;

	err[0] = 0;
	sigpipe_before(&pipe_was);
	if (!eng_path_ok) {
		snprintf(err, sizeof err, "cannot locate the engine");
		goto fail;
	}
	snprintf(path, sizeof path, "%s", eng_path);
	if (!mapped) {
		h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			snprintf(err, sizeof err, "%s", dlerror());
			if (dir_ok())
				h = open_in_dir(err, sizeof err);
		}
	} else {
		h = open_copy(path, err, sizeof err);
	}
	if (!h)
		goto fail;
	mapped = 1;
	{
		const char *(*abi)(void), *(*ver)(void);
		*(void **)&abi = dlsym(h, "dce_abi");
		*(void **)&ver = dlsym(h, "dce_engine_version");
		if (!abi || !ver || strcmp(abi(), DCF_ENGINE_SIG) != 0) {
			snprintf(err, sizeof err, "%s is the engine of another release (%s), this library is "
				"%s: install the libraries and the engine of one release", path,
				ver ? ver() : "an unknown version", DCF_VERSION);
			goto fail;
		}
	}
	sigpipe_after(&pipe_was);
#define DCF_X(r, n, a) \
	*(void **)&t.n = dlsym(h, "dce_" #n); \
	if (!t.n) { snprintf(err, sizeof err, "%s: no symbol dce_%s", path, #n); goto fail; }
	DCF_ENGINE_FUNCS(DCF_X)
#undef DCF_X
	table = t;
	restore_snapshot(&table);
	return &table;
fail:
	sigpipe_after(&pipe_was);
	fprintf(stderr, "distcache: cannot load the engine: %s\n", err);
	return NULL;
}

static const struct dcf_engine *get_engine(void)
{
	const struct dcf_engine *e = __atomic_load_n(&dcf_live_engine, __ATOMIC_ACQUIRE);

	if (e)
		return e;
	pthread_mutex_lock(&load_mu);
	if (!dcf_live_engine && failed_gen != dcf_generation) {
		e = load();
		if (e)
			__atomic_store_n(&dcf_live_engine, e, __ATOMIC_RELEASE);
		else
			failed_gen = dcf_generation;
	}
	e = dcf_live_engine;
	pthread_mutex_unlock(&load_mu);
	return e;
}

static void stale(void)
{
	static unsigned long said;

	if (said != dcf_generation) {
		said = dcf_generation;
		fprintf(stderr, "distcache: an object created before fork() could not be "
			"restored in this process; calls on it fail\n");
	}
}

static void obj_lock(void)
{
	obj_acquire();
}

static void obj_unlock(void)
{
	obj_release();
}

static const struct dcf_shared shared = {
	DCF_SHARED_VERSION, get_engine, &dcf_generation, obj_lock, obj_unlock, track, forget, live_obj, stale,
};

DCF_HIDDEN const struct dcf_shared *dcf_shared_get(void)
{
	return &shared;
}

/* libnal's one private export (see engine.h). */
DCF_PUBLIC const struct dcf_shared *dcf_front_shared(void)
{
	return &shared;
}
