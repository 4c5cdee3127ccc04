/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dc_client -nearmap (t_nearmap DC_BIN OUT): a DC_CTX of flags 0 on
 * dc_client's unix socket asks for dc_client's shared near map and answers
 * the GETs it holds without a round trip, exactly:
 *
 *   - a session added through dc_client is then read from the map: a
 *     thousand GETs make dc_client write nothing (its write(2) count,
 *     /proc/PID/io syscw), where a dc_client without -nearmap writes an
 *     answer for each; the data, the length and reget are the same;
 *   - a forked child reads the map it inherited;
 *   - a REMOVE through another client (straight to dc_server) is seen here:
 *     the server's notice reaches dc_client, which drops the entry;
 *   - dc_client killed, the map stops answering within about a lease;
 *     a dc_client started again on the socket is asked for its new map;
 *   - dc_server -nearmap, straight: GETs read from its map (it writes
 *     nothing), and a REMOVE through the socket is seen by the very next
 *     GET (the server drops the entry before it answers); restarted from
 *     its snapshot, it puts a session of the snapshot into the map at
 *     its first GET;
 *   - a map that is never leased costs a GET no second exchange: it is
 *     asked for again once a second, not at every GET;
 *   - a server that never answers the question for the map fails the
 *     operation after one bound, as a silent answer to the operation
 *     would (not two), and puts the context on probation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <distcache/dc_client.h>
#include "ct.h"

static char srv[300], cli[300], plain[300], bin[256], out[256];

static pid_t start(const char *prog, const char *log, char *const argv[])
{
	char path[600];
	pid_t pid;

	snprintf(path, sizeof path, "%s/%s", bin, prog);
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(path, argv);
		_exit(127);
	}
	return pid;
}

/* Waits (up to 10 s) until a unix socket at path takes connections. */
static int up(const char *target)
{
	double end = ct_now_us() + 10e6;

	while (ct_now_us() < end) {
		DC_CTX *c = DC_CTX_new(target, DC_CTX_FLAG_PERSISTENT);
		if (c) {
			DC_CTX_free(c);
			return 1;
		}
		usleep(10000);
	}
	return 0;
}

/* The write(2) calls pid made so far (-1 when unreadable). */
static long writes(pid_t pid)
{
	char path[64], line[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "syscw: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

static const unsigned char id[] = "nearmap-session-id-0123456789";
#define ID_LEN (sizeof id - 1)
static unsigned char data[600];

/* n GETs of id through c: how many answered it whole. */
static int gets(DC_CTX *c, int n)
{
	unsigned char b[1024];
	unsigned int used;
	int i, good = 0;

	for (i = 0; i < n; i++) {
		used = 0;
		if (DC_CTX_get_session(c, id, ID_LEN, b, sizeof b, &used) && used == sizeof data &&
		    memcmp(b, data, sizeof data) == 0)
			good++;
	}
	return good;
}

/* Repeats rounds of 200 GETs (up to ms) until one makes pid write at
 * most a few times (the map answers them); the writes of the last round,
 * or -1 if a GET failed. */
static long until_mapped(DC_CTX *c, pid_t pid, double ms)
{
	double end = ct_now_us() + ms * 1e3;
	long w = -1;

	while (ct_now_us() < end) {
		long before = writes(pid);
		if (gets(c, 200) != 200)
			return -1;
		w = writes(pid) - before;
		if (w <= 5)
			break;
		usleep(20000);
	}
	return w;
}

/* GETs of id until one misses (up to ms): the time it took, or -1. */
static double until_miss(DC_CTX *c, double ms)
{
	double t0 = ct_now_us();
	unsigned char b[1024];
	unsigned int used;

	while (DC_CTX_get_session(c, id, ID_LEN, b, sizeof b, &used)) {
		if (ct_now_us() - t0 > ms * 1e3)
			return -1;
		usleep(1000);
	}
	return (ct_now_us() - t0) / 1e3;
}

/* ---- a server that hands out a map it never leases ---- */

static pthread_mutex_t fmu = PTHREAD_MUTEX_INITIALIZER;
static int fprobes, fgets_;	/* under fmu */
static int fmap = -1;		/* the map: a valid header, lease 0 */

static const char probe_id[] = "\0distcache-go:nearmap";
#define PROBE_LEN (sizeof probe_id - 1)

/* One client: every frame is one whole request (the library's are); the
 * question for the map is answered DCNEARM1 with the map's descriptor,
 * any other request with the one byte 0x01 (a miss). */
static void *fake_conn(void *arg)
{
	int fd = (int)(long)arg;
	unsigned char in[4200], out[64];

	for (;;) {
		size_t have = 0, dl = 0, n;
		int probe;

		while (have < 14 || have < 14 + (dl = (size_t)in[12] << 8 | in[13])) {
			ssize_t k = read(fd, in + have, sizeof in - have);
			if (k <= 0) {
				close(fd);
				return NULL;
			}
			have += (size_t)k;
		}
		probe = dl == PROBE_LEN && memcmp(in + 14, probe_id, PROBE_LEN) == 0;
		memcpy(out, in, 14);
		out[4] = 1;	/* a response */
		out[11] = 1;	/* complete */
		if (probe) {
			struct msghdr h;
			struct iovec iov;
			union {
				struct cmsghdr c;
				char b[CMSG_SPACE(sizeof(int))];
			} ctl;
			struct cmsghdr *cm;

			memcpy(out + 14, "DCNEARM1", 8);
			n = 22;
			out[12] = 0;
			out[13] = 8;
			memset(&h, 0, sizeof h);
			iov.iov_base = out;
			iov.iov_len = n;
			h.msg_iov = &iov;
			h.msg_iovlen = 1;
			h.msg_control = ctl.b;
			h.msg_controllen = sizeof ctl.b;
			cm = CMSG_FIRSTHDR(&h);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &fmap, sizeof fmap);
			(void)!sendmsg(fd, &h, MSG_NOSIGNAL);
		} else {
			out[12] = 0;
			out[13] = 1;
			out[14] = 1;
			(void)!send(fd, out, 15, MSG_NOSIGNAL);
		}
		pthread_mutex_lock(&fmu);
		if (probe)
			fprobes++;
		else
			fgets_++;
		pthread_mutex_unlock(&fmu);
	}
}

static void *fake_accept(void *arg)
{
	int lfd = (int)(long)arg;

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pthread_t t;

		if (fd >= 0 && pthread_create(&t, NULL, fake_conn, (void *)(long)fd) == 0)
			pthread_detach(t);
	}
	return NULL;
}

/* Makes the map (the layout of doc/EXTENSIONS.md, written by hand: the test
 * must not share the code it tests) and starts the server on path. */
static int fake_start(const char *path)
{
	unsigned char hdr[128];
	struct sockaddr_un sa;
	uint32_t v;
	pthread_t t;
	int lfd;

	fmap = memfd_create("t_nearmap", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fmap < 0 || ftruncate(fmap, 128 + 2 * 2048) != 0)
		return 0;
	memset(hdr, 0, sizeof hdr);
	memcpy(hdr, "DCNEARM1", 8);
	v = 1;
	memcpy(hdr + 8, &v, 4);		/* version */
	v = 2;
	memcpy(hdr + 12, &v, 4);	/* slots */
	v = 2048;
	memcpy(hdr + 16, &v, 4);	/* slot size */
	v = 1944;
	memcpy(hdr + 20, &v, 4);	/* largest session */
	hdr[32] = 2;			/* generation: even, readable; lease 0 */
	if (pwrite(fmap, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr ||
	    fcntl(fmap, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
		return 0;
	unlink(path);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path)
		return 0;
	memcpy(sa.sun_path, path, strlen(path));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 16) != 0)
		return 0;
	return pthread_create(&t, NULL, fake_accept, (void *)(long)lfd) == 0;
}

int main(int argc, char **argv)
{
	char tsrv[320], tcli[320], tplain[320], slog[300], clog[300], plog[300];
	pid_t s, cl, pl, kid;
	DC_CTX *c, *direct, *nomap;
	unsigned char b[1024];
	unsigned int used = 0;
	long w;
	double ms;
	int st;
	size_t i;

	if (argc != 3)
		return 2;
	snprintf(bin, sizeof bin, "%s", argv[1]);
	snprintf(out, sizeof out, "%s", argv[2]);
	snprintf(srv, sizeof srv, "%s/nm-server.sock", out);
	snprintf(cli, sizeof cli, "%s/nm-client.sock", out);
	snprintf(plain, sizeof plain, "%s/nm-plain.sock", out);
	snprintf(tsrv, sizeof tsrv, "UNIX:%s", srv);
	snprintf(tcli, sizeof tcli, "UNIX:%s", cli);
	snprintf(tplain, sizeof tplain, "UNIX:%s", plain);
	snprintf(slog, sizeof slog, "%s/nm-server.log", out);
	snprintf(clog, sizeof clog, "%s/nm-client.log", out);
	snprintf(plog, sizeof plog, "%s/nm-plain.log", out);
	for (i = 0; i < sizeof data; i++)
		data[i] = (unsigned char)(i * 7 + 1);
	CT_PLAN(19);

	{
		char *sa[] = { "dc_server", "-listen", tsrv, NULL };
		char *ca[] = { "dc_client", "-listen", tcli, "-server", tsrv, "-nearmap", NULL };
		char *pa[] = { "dc_client", "-listen", tplain, "-server", tsrv, NULL };
		s = start("dc_server", slog, sa);
		up(tsrv);
		cl = start("dc_client", clog, ca);
		pl = start("dc_client", plog, pa);
		CHECK(up(tcli) && up(tplain), "dc_server, dc_client -nearmap and a plain dc_client up");
	}
	c = DC_CTX_new(tcli, 0);
	direct = DC_CTX_new(tsrv, 0);
	nomap = DC_CTX_new(tplain, 0);

	/* through dc_client -nearmap: from the map once it is live */
	DC_CTX_add_session(c, id, ID_LEN, data, sizeof data, 60000);
	w = until_mapped(c, cl, 10000);
	CHECK(w >= 0 && w <= 5, "200 GETs through dc_client -nearmap: dc_client wrote %ld times", w);
	{
		long before = writes(cl);
		int good = gets(c, 1000);
		w = writes(cl) - before;
		CHECK(good == 1000 && w <= 5, "1000 more: %d answered whole, dc_client wrote %ld times", good, w);
	}
	{
		unsigned char small[10];
		int g = DC_CTX_get_session(c, id, ID_LEN, small, sizeof small, &used);
		int rg = DC_CTX_reget_session(c, id, ID_LEN, b, sizeof b, &used);
		CHECK(g == 1 && memcmp(small, data, sizeof small) == 0 && rg == 1 && used == sizeof data &&
		      memcmp(b, data, sizeof data) == 0,
		      "a GET into a short buffer gives its first bytes and the full length; reget the whole");
	}
	{
		long before = writes(pl);
		int good;
		DC_CTX_add_session(nomap, id, ID_LEN, data, sizeof data, 60000);
		before = writes(pl);
		good = gets(nomap, 1000);
		w = writes(pl) - before;
		CHECK(good == 1000 && w >= 1000, "without -nearmap the same 1000 GETs made dc_client write %ld times", w);
	}

	/* a forked child reads the map it inherited */
	{
		long before = writes(cl);
		kid = fork();
		if (kid == 0)
			_exit(gets(c, 1000) == 1000 ? 0 : 1);
		waitpid(kid, &st, 0);
		w = writes(cl) - before;
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && w <= 5,
		      "a forked child's 1000 GETs: all answered, dc_client wrote %ld times", w);
	}

	/* a REMOVE elsewhere */
	CHECK(DC_CTX_remove_session(direct, id, ID_LEN) == 1, "REMOVE straight to dc_server");
	ms = until_miss(c, 5000);
	CHECK(ms >= 0, "the GETs through dc_client -nearmap miss %.1f ms after it", ms);

	/* dc_client killed: the map stops answering */
	DC_CTX_add_session(c, id, ID_LEN, data, sizeof data, 60000);
	w = until_mapped(c, cl, 10000);
	kill(cl, SIGKILL);
	waitpid(cl, &st, 0);
	ms = until_miss(c, 5000);
	CHECK(w >= 0 && w <= 5 && ms >= 0 && ms < 1000,
	      "dc_client killed while the map answered: GETs fail %.1f ms later (a lease is 100 ms)", ms);

	/* a new dc_client on the socket: its map is asked for */
	unlink(cli);
	{
		char *ca[] = { "dc_client", "-listen", tcli, "-server", tsrv, "-nearmap", NULL };
		cl = start("dc_client", clog, ca);
	}
	CHECK(up(tcli), "dc_client -nearmap started again");
	DC_CTX_add_session(c, id, ID_LEN, data, sizeof data, 60000);
	w = until_mapped(c, cl, 15000);
	CHECK(w >= 0 && w <= 5, "GETs are read from the new dc_client's map (it wrote %ld times in 200)", w);

	/* dc_server -nearmap, straight */
	{
		char p5[300], t5[320], l5[300];
		char snap[300];
		char *sa[] = { "dc_server", "-listen", t5, "-nearmap", "-snapshot", snap, NULL };
		DC_CTX *c5, *c6;
		pid_t s5;
		long before;
		int good, g, r;

		snprintf(p5, sizeof p5, "%s/nm-server-map.sock", out);
		snprintf(t5, sizeof t5, "UNIX:%s", p5);
		snprintf(l5, sizeof l5, "%s/nm-server-map.log", out);
		snprintf(snap, sizeof snap, "%s/nm-server-map.snap", out);
		unlink(snap);
		s5 = start("dc_server", l5, sa);
		CHECK(up(t5), "dc_server -nearmap up");
		c5 = DC_CTX_new(t5, 0);
		c6 = DC_CTX_new(t5, 0);
		DC_CTX_add_session(c5, id, ID_LEN, data, sizeof data, 60000);
		gets(c5, 10);	/* the map asked for */
		before = writes(s5);
		good = gets(c5, 1000);
		w = writes(s5) - before;
		CHECK(good == 1000 && w <= 5, "1000 GETs straight to dc_server -nearmap: %d answered whole, "
		      "dc_server wrote %ld times", good, w);
		gets(c6, 10);
		r = DC_CTX_remove_session(c6, id, ID_LEN);
		g = DC_CTX_get_session(c5, id, ID_LEN, b, sizeof b, &used);
		CHECK(r == 1 && g == 0, "a REMOVE through another context, then a GET: removed %d, found %d", r, g);
		/* Restarted from its snapshot, dc_server holds the session in
		 * its cache and not yet in its map: the first GET puts it
		 * there, and the ones after it are read from the map. */
		DC_CTX_add_session(c6, id, ID_LEN, data, sizeof data, 60000);
		DC_CTX_free(c5);
		DC_CTX_free(c6);
		kill(s5, SIGTERM);
		waitpid(s5, NULL, 0);
		s5 = start("dc_server", l5, sa);
		CHECK(up(t5), "dc_server -nearmap up again, from its snapshot");
		c5 = DC_CTX_new(t5, 0);
		g = gets(c5, 10);
		/* (this process asks for the new map a second after the old
		 * one's lease ended) */
		w = until_mapped(c5, s5, 5000);
		CHECK(g == 10 && w >= 0 && w <= 5, "a session from the snapshot: %d GETs answered whole, then "
		      "200 made dc_server write %ld times", g, w);
		DC_CTX_free(c5);
		kill(s5, SIGTERM);
		waitpid(s5, NULL, 0);
	}

	/* a map never leased */
	{
		char path[300], tgt[320];
		DC_CTX *c4;
		double t0;
		long n = 0;
		int p0, g0;

		snprintf(path, sizeof path, "%s/nm-fake.sock", out);
		snprintf(tgt, sizeof tgt, "UNIX:%s", path);
		CHECK(fake_start(path), "a fake server that hands out a map it never leases");
		c4 = DC_CTX_new(tgt, 0);
		t0 = ct_now_us();
		/* past a second, so that the map it hands out is stale */
		while ((ms = (ct_now_us() - t0) / 1e3) < 1500) {
			DC_CTX_get_session(c4, id, ID_LEN, b, sizeof b, &used);
			n++;
		}
		pthread_mutex_lock(&fmu);
		p0 = fprobes;
		g0 = fgets_;
		pthread_mutex_unlock(&fmu);
		CHECK(g0 == n && p0 >= 1 && p0 <= 2 + (int)(ms / 1000),
		      "%ld GETs in %.0f ms with a map never leased: the server was asked for it %d times (once "
		      "a second at most)", n, ms, p0);
		DC_CTX_free(c4);
	}

	/* a server that takes the question and never answers */
	{
		struct sockaddr_un sa;
		char path[300], tgt[320];
		DC_CTX *c3;
		double t0, first, second;
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		snprintf(path, sizeof path, "%s/nm-silent.sock", out);
		snprintf(tgt, sizeof tgt, "UNIX:%s", path);
		unlink(path);
		memset(&sa, 0, sizeof sa);
		sa.sun_family = AF_UNIX;
		memcpy(sa.sun_path, path, strlen(path) < sizeof sa.sun_path ? strlen(path) : sizeof sa.sun_path - 1);
		bind(fd, (struct sockaddr *)&sa, sizeof sa);
		listen(fd, 16);	/* never accepted: connects complete, nothing answers */
		c3 = DC_CTX_new(tgt, 0);
		t0 = ct_now_us();
		st = DC_CTX_get_session(c3, id, ID_LEN, b, sizeof b, &used);
		first = (ct_now_us() - t0) / 1e3;
		t0 = ct_now_us();
		st += DC_CTX_get_session(c3, id, ID_LEN, b, sizeof b, &used);
		second = (ct_now_us() - t0) / 1e3;
		/* a young context waits ten 100 ms floors for its first answer */
		CHECK(st == 0 && first >= 900 && first < 1700 && second < 200,
		      "a silent server: the first GET fails after %.0f ms (one bound of 1000 ms), the next after "
		      "%.1f ms (probation)", first, second);
		DC_CTX_free(c3);
		close(fd);
	}

	DC_CTX_free(c);
	DC_CTX_free(direct);
	DC_CTX_free(nomap);
	kill(cl, SIGTERM);
	kill(pl, SIGTERM);
	kill(s, SIGTERM);
	waitpid(cl, NULL, 0);
	waitpid(pl, NULL, 0);
	waitpid(s, NULL, 0);
	return ct_exit();
}
