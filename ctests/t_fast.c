/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The front's fast path (t_fast DC_BIN OUT): a DC_CTX operation on a
 * connection the engine already made is done in C, without entering the
 * engine (counted with the engine's dce_ctx_ops), and whatever the fast
 * path cannot finish ends as the engine would end it:
 *
 *   - warm operations of flags 0 and PERSISTENT contexts cross zero times,
 *     and their results (get, has, add, remove, reget) are right;
 *   - a server restarted between two operations: flags 0 and
 *     PERSISTENT|RETRY contexts succeed (the stale connection is seen and
 *     the engine connects again), PERSISTENT alone fails once (E-35);
 *   - a forked child finds the parent's pooled connections closed and
 *     makes its own; the parent's still work, without crossing;
 *   - a context of flags 0 on a unix socket makes its first connection
 *     in the front: a forked child whose operations all succeed never
 *     loads the engine (no thread is started);
 *   - a server answering garbage, another uid, a frame too long, more than
 *     the answer: that connection is closed, the operation fails, the next
 *     one works on a new connection; an empty answer keeps the connection;
 *     a silent server: the operation fails after its bound, and the context
 *     is on probation (the next fails at once); after slow answers the
 *     bound is ten times the slowest (the engine's rule), not the floor;
 *     a context whose answers began under 5 s ago waits for an answer
 *     300 ms late (1 s, as the engine would), not ten times its first
 *     answers (the 100 ms floor);
 *     an answer that is not there yet is waited for before it is read
 *     (one recv(2) per answer: the front's reads are counted here);
 *   - a child forked while another thread waits for its answer closes
 *     its copy of that connection too (the server sees it closed once the
 *     parent closes it, the child still alive).
 *
 * The misbehaving server is a thread of this program (fake_server), which
 * writes its frames by hand: the test must not share the codec it tests.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <distcache/dc_client.h>
#include "ct.h"

/* ---- the engine's count of DC_CTX operations ---- */

static unsigned long (*ctx_ops)(void);

static int find_engine(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	if (info->dlpi_name && strstr(info->dlpi_name, "libdistcache-engine")) {
		snprintf(data, PATH_MAX, "%s", info->dlpi_name);
		return 1;
	}
	return 0;
}

static unsigned long ops(void)
{
	if (!ctx_ops) {
		char path[PATH_MAX] = "";
		void *h;

		dl_iterate_phdr(find_engine, path);
		if (!path[0])
			return 0;	/* no engine loaded: nothing crossed */
		if ((h = dlopen(path, RTLD_NOW | RTLD_NOLOAD)))
			ctx_ops = (unsigned long (*)(void))dlsym(h, "dce_ctx_ops");
		if (!ctx_ops)
			return (unsigned long)-1;
	}
	return ctx_ops();
}

/* ---- the front's reads, counted ---- */

/* The front calls recv(3) from libc; this definition takes its place (the
 * program's own symbols come first), counts the reads of an answer (not
 * the MSG_PEEK check of an idle connection) while counting is on, and
 * those that found nothing to read. */
static volatile int reads_on;
static int reads, reads_empty;

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	ssize_t r = syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);

	if (reads_on && !(flags & MSG_PEEK)) {
		int e = errno;

		__atomic_add_fetch(&reads, 1, __ATOMIC_RELAXED);
		if (r < 0 && (e == EAGAIN || e == EWOULDBLOCK))
			__atomic_add_fetch(&reads_empty, 1, __ATOMIC_RELAXED);
		errno = e;
	}
	return r;
}

/* ---- dc_server, started and restarted here ---- */

static pid_t start_server(const char *bin, const char *sock, const char *log)
{
	pid_t pid;

	unlink(sock);
	if ((pid = fork()) == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		char listen[PATH_MAX + 8];

		prctl(PR_SET_PDEATHSIG, SIGTERM);	/* not left running if this test dies */

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		snprintf(listen, sizeof listen, "UNIX:%s", sock);
		execl(bin, bin, "-listen", listen, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* until the socket accepts (10 s at most) */
static int up(const char *sock)
{
	double end = ct_now_us() + 10e6;
	struct sockaddr_un sa;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
	while (ct_now_us() < end) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0), ok;

		ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
		close(fd);
		if (ok)
			return 1;
		usleep(2000);
	}
	return 0;
}

static void stop_server(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* ---- warm operations: no crossing ---- */

#define WARM 200

/* 7 checks */
static void warm(const char *target, unsigned int flags)
{
	DC_CTX *c = DC_CTX_new(target, flags);
	unsigned char buf[8192], big[6000];
	unsigned int used = 0;
	unsigned long before, after;
	int i, bad = 0;

	memset(big, 'b', sizeof big);
	CHECK(c && DC_CTX_add_session(c, U("warm-1"), 6, U("the session"), 11, 60000) == 1,
		"flags %#x: the first operation stores a session", flags);
	before = ops();
	for (i = 0; i < WARM; i++) {
		used = 0;
		bad += DC_CTX_get_session(c, U("warm-1"), 6, buf, sizeof buf, &used) != 1 || used != 11 ||
			memcmp(buf, "the session", 11) != 0;
		bad += DC_CTX_has_session(c, U("warm-1"), 6) != 1;
	}
	bad += DC_CTX_get_session(c, U("warm-1"), 6, buf, 4, &used) != 1 || used != 11;
	after = ops();
	CHECK(before != (unsigned long)-1 && bad == 0 && after == before,
		"flags %#x: %d warm get+has are right (%d wrong) and enter the engine %lu times", flags, WARM, bad,
		after - before);
	CHECK(DC_CTX_reget_session(c, U("warm-1"), 6, buf, sizeof buf, &used) == 1 && used == 11 &&
		memcmp(buf, "the session", 11) == 0 &&
		DC_CTX_reget_session(c, U("warm-2"), 6, buf, sizeof buf, &used) == 0,
		"flags %#x: reget after a fast get returns its answer, not another id's", flags);
	bad = DC_CTX_add_session(c, U("warm-2"), 6, big, sizeof big, 60000) != 1;
	bad += DC_CTX_reget_session(c, U("warm-1"), 6, buf, sizeof buf, &used) != 0;
	used = 0;
	bad += DC_CTX_get_session(c, U("warm-2"), 6, buf, 10, &used) != 1 || used != sizeof big;
	bad += DC_CTX_get_session(c, U("warm-2"), 6, NULL, 0, &used) != 1 || used != sizeof big;
	bad += DC_CTX_get_session(c, U("warm-2"), 6, buf, sizeof buf, &used) != 1 ||
		memcmp(buf, big, sizeof big) != 0;
	CHECK(bad == 0, "flags %#x: a session of %zu bytes (several frames) in and out; reget cleared by add; "
		"a short buffer gets the full length", flags, sizeof big);
	bad = DC_CTX_remove_session(c, U("warm-2"), 6) != 1;
	bad += DC_CTX_remove_session(c, U("warm-2"), 6) != 0;
	bad += DC_CTX_has_session(c, U("warm-2"), 6) != 0;
	bad += DC_CTX_get_session(c, U("warm-2"), 6, buf, sizeof buf, &used) != 0;
	bad += DC_CTX_add_session(c, U("warm-1"), 6, U("again"), 5, 60000) != 0;	/* present: refused */
	CHECK(bad == 0, "flags %#x: remove, remove again, has, get of a removed session, add of a present one", flags);
	CHECK(ops() == before, "flags %#x: none of them entered the engine (%lu)", flags, ops() - before);
	DC_CTX_remove_session(c, U("warm-1"), 6);
	DC_CTX_free(c);
	CHECK(1, "flags %#x: freed", flags);
}

/* ---- a restarted server ---- */

/* 6 checks */
static void restarted(const char *bin, const char *sock, const char *log, pid_t *server)
{
	static const unsigned int fl[3] = { 0, DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_LATE | DC_CTX_FLAG_PERSISTENT_RETRY,
		DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_LATE };
	char target[PATH_MAX + 8];
	DC_CTX *c[3];
	int i, ok = 1;
	unsigned long before;

	snprintf(target, sizeof target, "UNIX:%s", sock);
	for (i = 0; i < 3; i++)
		ok &= (c[i] = DC_CTX_new(target, fl[i])) && DC_CTX_add_session(c[i], U("r"), 1, U("data1"), 5, 60000) >= 0 &&
			DC_CTX_has_session(c[i], U("r"), 1) == 1;
	CHECK(ok, "restart: three contexts warm");
	stop_server(*server);
	*server = start_server(bin, sock, log);
	CHECK(up(sock), "restart: dc_server restarted");
	before = ops();
	CHECK(DC_CTX_add_session(c[0], U("r"), 1, U("data2"), 5, 60000) == 1 && ops() == before,
		"restart, flags 0: the stale connection is noticed, the front connects again and the add succeeds "
		"(the engine has no context for it: %lu crossings)", ops() - before);
	CHECK(DC_CTX_has_session(c[1], U("r"), 1) == 1, "restart, PERSISTENT|RETRY: has succeeds (resent once)");
	CHECK(DC_CTX_has_session(c[2], U("r"), 1) == -1 && DC_CTX_has_session(c[2], U("r"), 1) == 1,
		"restart, PERSISTENT: the first operation fails, the next connects again (E-35)");
	before = ops();
	CHECK(DC_CTX_has_session(c[0], U("r"), 1) == 1 && DC_CTX_has_session(c[1], U("r"), 1) == 1 &&
		DC_CTX_has_session(c[2], U("r"), 1) == 1 && ops() == before,
		"restart: then all three are warm again (no crossing)");
	for (i = 0; i < 3; i++)
		DC_CTX_free(c[i]);
}

/* ---- fork ---- */

/* the socket descriptors open in this process: a bitmap over 0..1023 */
static void sockets(unsigned char *map)
{
	int fd;
	struct stat st;

	memset(map, 0, 1024);
	for (fd = 0; fd < 1024; fd++)
		map[fd] = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* 4 checks */
static void forked(const char *target)
{
	DC_CTX *c = DC_CTX_new(target, 0);
	unsigned char before[1024], after[1024], buf[64];
	unsigned int used;
	int fd, n = 0, st = -1;
	pid_t pid;
	unsigned long o;

	sockets(before);
	CHECK(c && DC_CTX_add_session(c, U("f"), 1, U("fdata"), 5, 60000) == 1 &&
		DC_CTX_get_session(c, U("f"), 1, buf, sizeof buf, &used) == 1, "fork: the parent's context is warm");
	sockets(after);
	for (fd = 0; fd < 1024; fd++)
		n += after[fd] && !before[fd];
	if ((pid = fork()) == 0) {
		int open_ = 0;

		for (fd = 0; fd < 1024; fd++)
			open_ += after[fd] && !before[fd] && fcntl(fd, F_GETFD) != -1;
		if (open_)
			_exit(1);
		if (DC_CTX_get_session(c, U("f"), 1, buf, sizeof buf, &used) != 1 || used != 5)
			_exit(2);
		_exit(DC_CTX_has_session(c, U("f"), 1) == 1 ? 0 : 3);
	}
	waitpid(pid, &st, 0);
	CHECK(n >= 1, "fork: the parent holds %d new socket(s)", n);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		"fork: the child finds the parent's connections closed and works on its own (status %d)", st);
	o = ops();
	CHECK(DC_CTX_get_session(c, U("f"), 1, buf, sizeof buf, &used) == 1 && used == 5 && ops() == o,
		"fork: the parent's connection still works, without crossing");
	DC_CTX_remove_session(c, U("f"), 1);
	DC_CTX_free(c);
}

/* ---- a child that never needs the engine ---- */

static int threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* 2 checks: a forked child's context of flags 0 on a unix socket connects
 * by itself (an Apache child's first lookup): every operation works and
 * the engine is not loaded (its Go runtime would start threads). */
static void no_engine(const char *target)
{
	DC_CTX *c = DC_CTX_new(target, 0);
	int st = -1;
	pid_t pid;

	CHECK(c && threads() >= 1, "no engine: a context of flags 0 made before the fork (%d thread(s) here)",
		threads());
	if ((pid = fork()) == 0) {
		unsigned char buf[64];
		unsigned int used = 0;
		int ok;

		ok = DC_CTX_add_session(c, U("ne"), 2, U("ne-data"), 7, 60000) == 1 &&
			DC_CTX_get_session(c, U("ne"), 2, buf, sizeof buf, &used) == 1 && used == 7 &&
			memcmp(buf, "ne-data", 7) == 0 && DC_CTX_has_session(c, U("ne"), 2) == 1 &&
			DC_CTX_reget_session(c, U("ne"), 2, buf, sizeof buf, &used) == 0 &&
			DC_CTX_remove_session(c, U("ne"), 2) == 1 && DC_CTX_has_session(c, U("ne"), 2) == 0;
		if (!ok)
			_exit(1);
		_exit(threads() == 1 ? 0 : 10 + threads());
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		"no engine: in a forked child add, get, has, reget, remove work and the engine is not loaded "
		"(status %d: 1 an operation failed, 10+N N threads)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	DC_CTX_free(c);
}

/* ---- a misbehaving server ---- */

enum { GOOD, GARBAGE, WRONG_UID, TOO_LONG, TRAILING, EMPTY, SILENT, SLOW, SLOWER };
static volatile int mode = GOOD;
static int accepted, closed_by_peer, requests;	/* under mu */
static volatile int hold;	/* the fake server waits before it answers */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int lfd;

static void put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

/* Answers one request frame req (14 header bytes + data) as mode says. */
static void answer(int fd, const unsigned char *req, size_t len)
{
	unsigned char out[64];
	size_t n = 14;
	int m = mode;

	memcpy(out, req, 14);	/* level, uid, op as the request's */
	out[4] = 1;		/* a response */
	out[11] = 1;		/* complete */
	if (req[10] == 1) {	/* GET: a 10-byte session */
		memcpy(out + 14, "fake-sess!", 10);
		n += 10;
	} else {
		out[14] = 0;	/* OK */
		n += 1;
	}
	(void)len;
	switch (m) {
	case SILENT:
		return;
	case SLOW:
		while (hold)
			usleep(1000);	/* the server's wait for its release */
		usleep(40000);
		break;
	case SLOWER:
		usleep(300000);
		break;
	case GARBAGE:
		memcpy(out, "HTTP/1.1 400 Bad", 16);
		n = 16;
		break;
	case WRONG_UID:
		out[8] ^= 1;
		break;
	case TOO_LONG:
		put16(out + 12, 5000);
		break;
	case TRAILING:
		memcpy(out + n, out, n);
		n *= 2;
		break;
	case EMPTY:
		n = 14;
		break;
	}
	if (m != TOO_LONG && m != GARBAGE)
		put16(out + 12, (unsigned)((m == TRAILING ? n / 2 : n) - 14));
	(void)!send(fd, out, n, MSG_NOSIGNAL);
}

static void *fake_server(void *arg)
{
	struct pollfd p[17];
	unsigned char in[16][4200];
	size_t have[16];
	int n = 0, i;

	(void)arg;
	p[0].fd = lfd;
	p[0].events = POLLIN;
	for (;;) {
		if (poll(p, (nfds_t)n + 1, -1) < 0)
			continue;
		if (p[0].revents && n < 16) {
			int fd = accept(lfd, NULL, NULL);

			if (fd >= 0) {
				p[n + 1].fd = fd;
				p[n + 1].events = POLLIN;
				have[n] = 0;
				n++;
				pthread_mutex_lock(&mu);
				accepted++;
				pthread_mutex_unlock(&mu);
			}
		}
		for (i = 0; i < n; i++) {
			ssize_t k;
			size_t dl;

			if (!p[i + 1].revents)
				continue;
			k = read(p[i + 1].fd, in[i] + have[i], sizeof in[i] - have[i]);
			if (k <= 0) {
				close(p[i + 1].fd);
				pthread_mutex_lock(&mu);
				closed_by_peer++;
				pthread_mutex_unlock(&mu);
				p[i + 1] = p[n];
				memcpy(in[i], in[n - 1], have[n - 1]);
				have[i] = have[n - 1];
				n--;
				i--;
				continue;
			}
			have[i] += (size_t)k;
			while (have[i] >= 14 && have[i] >= 14 + (dl = (size_t)in[i][12] << 8 | in[i][13])) {
				pthread_mutex_lock(&mu);
				requests++;
				pthread_mutex_unlock(&mu);
				answer(p[i + 1].fd, in[i], 14 + dl);
				memmove(in[i], in[i] + 14 + dl, have[i] - 14 - dl);
				have[i] -= 14 + dl;
			}
		}
	}
	return NULL;
}

static int counter(int *v)
{
	int r;

	pthread_mutex_lock(&mu);
	r = *v;
	pthread_mutex_unlock(&mu);
	return r;
}

/* until *v is at least want (5 s at most) */
static int reaches(int *v, int want)
{
	double end = ct_now_us() + 5e6;

	while (counter(v) < want)
		if (ct_now_us() > end)
			return 0;
		else
			usleep(1000);
	return 1;
}

/* 5 checks per bad answer */
static void bad_answer(DC_CTX *c, int m, const char *what)
{
	unsigned char buf[64];
	unsigned int used;
	int acc, cl;

	mode = GOOD;
	CHECK(DC_CTX_get_session(c, U("x"), 1, buf, sizeof buf, &used) == 1 && used == 10,
		"%s: a good answer before", what);
	acc = counter(&accepted);
	cl = counter(&closed_by_peer);
	mode = m;
	CHECK(DC_CTX_get_session(c, U("x"), 1, buf, sizeof buf, &used) == 0, "%s: the get fails", what);
	CHECK(reaches(&closed_by_peer, cl + 1), "%s: that connection is closed", what);
	mode = GOOD;
	CHECK(DC_CTX_get_session(c, U("x"), 1, buf, sizeof buf, &used) == 1 && used == 10,
		"%s: the next get works", what);
	CHECK(counter(&accepted) == acc + 1, "%s: on a new connection", what);
}

static void *has_x(void *c)
{
	return (void *)(long)DC_CTX_has_session(c, U("x"), 1);
}

/* 3 checks: fork while another thread's operation holds its connection */
static void forked_in_flight(const char *target)
{
	DC_CTX *c = DC_CTX_new(target, 0);
	pthread_t th;
	void *res = NULL;
	int go[2], cl, req, st = -1;
	pid_t pid;

	/* 40 ms answers: a bound of 400 ms, for the fork in between */
	mode = SLOW;
	CHECK(c && DC_CTX_has_session(c, U("x"), 1) == 1 && DC_CTX_has_session(c, U("x"), 1) == 1,
		"fork in flight: the context is warm, on one connection");
	cl = counter(&closed_by_peer);
	req = counter(&requests);
	hold = 1;
	if (pipe(go) != 0 || pthread_create(&th, NULL, has_x, c) != 0) {
		fprintf(stderr, "t_fast: pipe or thread\n");
		exit(1);
	}
	reaches(&requests, req + 1);	/* the thread's request is at the server */
	if ((pid = fork()) == 0) {
		char b;

		close(go[1]);
		(void)!read(go[0], &b, 1);	/* until the parent has looked */
		_exit(0);
	}
	close(go[0]);
	hold = 0;
	pthread_join(th, &res);
	CHECK((long)res == 1, "fork in flight: the thread's operation succeeds (%ld)", (long)res);
	DC_CTX_free(c);
	CHECK(reaches(&closed_by_peer, cl + 1),
		"fork in flight: freed by the parent, the connection is closed (the child holds no copy)");
	close(go[1]);
	waitpid(pid, &st, 0);
	mode = GOOD;
}

/* 5 * 4 + 3 + 2 + 3 + 4 + 3 checks */
static void misbehaving(const char *out)
{
	struct sockaddr_un sa;
	pthread_t th;
	char target[PATH_MAX + 8];
	DC_CTX *c;
	unsigned char buf[64];
	unsigned int used;
	unsigned long o;
	int acc;
	double t0, t;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/fake.sock", out);
	unlink(sa.sun_path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 16) != 0 ||
	    pthread_create(&th, NULL, fake_server, NULL) != 0) {
		fprintf(stderr, "t_fast: cannot start the fake server\n");
		exit(1);
	}
	snprintf(target, sizeof target, "UNIX:%s", sa.sun_path);
	c = DC_CTX_new(target, 0);
	bad_answer(c, GARBAGE, "garbage");
	bad_answer(c, WRONG_UID, "another uid");
	bad_answer(c, TOO_LONG, "a frame of 5000 data bytes");
	bad_answer(c, TRAILING, "more than the answer");

	mode = EMPTY;
	acc = counter(&accepted);
	o = ops();
	CHECK(DC_CTX_get_session(c, U("x"), 1, buf, sizeof buf, &used) == 0 &&
		DC_CTX_has_session(c, U("x"), 1) == -1 && DC_CTX_add_session(c, U("x"), 1, U("d"), 1, 60000) == 0,
		"an empty answer (dc_client without a server): get, has and add fail");
	mode = GOOD;
	CHECK(DC_CTX_has_session(c, U("x"), 1) == 1 && counter(&accepted) == acc && ops() == o,
		"and the connection is kept (no new one, no crossing)");
	DC_CTX_free(c);
	CHECK(reaches(&closed_by_peer, counter(&accepted)), "DC_CTX_free closes the pooled connections");

	/* young: answers for under 5 s say little of the next, so one 300 ms
	 * late is waited for, on the fast path (the bound 1 s, not ten times
	 * the first answers: the 100 ms floor) */
	c = DC_CTX_new(target, 0);
	CHECK(DC_CTX_has_session(c, U("x"), 1) == 1 && DC_CTX_has_session(c, U("x"), 1) == 1,
		"young: the context is warm");
	mode = SLOWER;
	o = ops();
	t0 = ct_now_us();
	acc = DC_CTX_has_session(c, U("x"), 1);
	t = (ct_now_us() - t0) / 1e3;
	CHECK(acc == 1 && ops() == o,
		"young: an answer after 300 ms is taken, on the fast path (%.0f ms, %lu crossings)", t, ops() - o);
	mode = GOOD;
	DC_CTX_free(c);

	/* silent: the bound (1 s: the context is young; DISTCACHE_TIMEOUT_MS
	 * unset), then probation */
	c = DC_CTX_new(target, 0);
	CHECK(DC_CTX_has_session(c, U("x"), 1) == 1 && DC_CTX_has_session(c, U("x"), 1) == 1,
		"silent: the context is warm");
	mode = SILENT;
	t0 = ct_now_us();
	CHECK(DC_CTX_has_session(c, U("x"), 1) == -1 && (t = (ct_now_us() - t0) / 1e3) >= 90 && t < 5000,
		"silent: the operation fails after its bound (%.0f ms)", (ct_now_us() - t0) / 1e3);
	t0 = ct_now_us();
	CHECK(DC_CTX_get_session(c, U("x"), 1, buf, sizeof buf, &used) == 0 && (ct_now_us() - t0) / 1e3 < 1000,
		"silent: the next fails at once, on probation (%.1f ms)", (ct_now_us() - t0) / 1e3);
	mode = GOOD;
	DC_CTX_free(c);

	/* a slow server: the bound follows its answers, as the engine's does */
	c = DC_CTX_new(target, 0);
	CHECK(DC_CTX_has_session(c, U("x"), 1) == 1, "slow: the context is warm");
	mode = SLOW;
	o = ops();
	reads = reads_empty = 0;
	reads_on = 1;
	acc = DC_CTX_has_session(c, U("x"), 1) == 1 && DC_CTX_has_session(c, U("x"), 1) == 1 &&
		DC_CTX_has_session(c, U("x"), 1) == 1;
	reads_on = 0;
	CHECK(acc, "slow: answers after 40 ms are taken");
	CHECK(ops() == o && reads == 3 && reads_empty == 0,
		"slow: each answer is waited for, then read once (%d reads, %d found nothing; %lu crossings)",
		reads, reads_empty, ops() - o);
	mode = SILENT;
	t0 = ct_now_us();
	acc = DC_CTX_has_session(c, U("x"), 1);
	t = (ct_now_us() - t0) / 1e3;
	CHECK(acc == -1 && t >= 300 && t < 8000,
		"slow, then silent: the operation waits ten times the slowest answer, not the 100 ms floor (%.0f ms)", t);
	mode = GOOD;
	DC_CTX_free(c);

	forked_in_flight(target);
}

int main(int argc, char **argv)
{
	char sock[PATH_MAX], log[PATH_MAX], target[PATH_MAX + 8], bin[PATH_MAX];
	pid_t server;

	if (argc != 3) {
		fprintf(stderr, "usage: t_fast DC_BIN OUT\n");
		return 2;
	}
	unsetenv("DISTCACHE_TIMEOUT_MS");
	CT_PLAN(7 * 2 + 6 + 4 + 2 + 5 * 4 + 3 + 2 + 3 + 4 + 3);
	snprintf(bin, sizeof bin, "%s/dc_server", argv[1]);
	snprintf(sock, sizeof sock, "%s/fast.sock", argv[2]);
	snprintf(log, sizeof log, "%s/t_fast.dc_server.log", argv[2]);
	snprintf(target, sizeof target, "UNIX:%s", sock);
	server = start_server(bin, sock, log);
	if (!up(sock)) {
		fprintf(stderr, "t_fast: dc_server did not come up\n");
		return 1;
	}
	warm(target, 0);
	warm(target, DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_LATE);
	restarted(bin, sock, log, &server);
	forked(target);
	no_engine(target);
	misbehaving(argv[2]);
	stop_server(server);
	return ct_exit();
}
