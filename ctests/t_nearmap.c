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
 *     a dc_client started again on the socket is asked for its new map.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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
	CT_PLAN(11);

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
