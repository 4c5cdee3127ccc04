/* SPDX-License-Identifier: Apache-2.0 */
/*
 * make bench (capi part): what one fork() costs a process whose DC_SERVERs
 * (default cache) hold N sessions of 1.5 KB, for N = 0, 60 000, 1 000 000
 * (or the sizes given as arguments): the time the parent spends in fork()
 * (median of 5 forks; the atfork prepare handler runs inside it), beside
 * the same with the snapshot turned off (DISTCACHE_NO_FORK_RESTORE, rounds
 * alternating): the kernel's own share, copying the page tables, which
 * grows with any process's memory; the
 * parent's resident memory before the forks and its peak across them (the
 * peak is reset just before the first fork, /proc/self/clear_refs), and in
 * a child the time from fork() to the first DC_SERVER answer (the fresh
 * engine and whatever restore it does) with the count it sees, which must
 * be N.  A DC_SERVER holds at most 60 000 sessions, so N is spread over
 * ceil(N / 60 000) servers.  Each size runs in a process of its own (this
 * program run again with -n N), so peaks do not carry over.
 *
 * Usage: forkbench [N ...]; forkbench -n N (one row, no header).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <distcache/dc_plug.h>
#include <distcache/dc_server.h>
#include "ct.h"

#define PER_SERVER 60000
#define DATA_LEN 1500
#define FORKS 5



static void die(const char *what)
{
	fprintf(stderr, "forkbench: %s\n", what);
	exit(1);
}

/* Fill srv with n sessions through a client plug over a socket pair. */
static void fill(DC_SERVER *srv, long first, long n, unsigned char *data)
{
	NAL_CONNECTION *cc = NAL_CONNECTION_new(), *sc = NAL_CONNECTION_new();
	NAL_SELECTOR *sel = NAL_SELECTOR_new();
	DC_PLUG *p;
	struct timeval tv;
	long sent = 0, acked = 0;

	if (!sel || !NAL_CONNECTION_create_pair(cc, sc, 32768) || !NAL_CONNECTION_add_to_selector(sc, sel) ||
	    !DC_SERVER_new_client(srv, sc, DC_CLIENT_FLAG_IN_SERVER) ||
	    !(p = DC_PLUG_new(cc, DC_PLUG_FLAG_TO_SERVER)) || !DC_PLUG_to_select(p, sel))
		die("cannot make a client pair");
	while (acked < n) {
		unsigned long uid;
		DC_CMD cmd;
		const unsigned char *d;
		unsigned int dl;

		while (sent < n && sent - acked < 16) {
			unsigned char req[64 + DATA_LEN], *w = req;
			unsigned int room = sizeof req;
			char id[32];
			int il = snprintf(id, sizeof id, "session-%09ld", first + sent);

			NAL_encode_uint32(&w, &room, 3600000);
			NAL_encode_uint32(&w, &room, (unsigned long)il);
			NAL_encode_bin(&w, &room, (const unsigned char *)id, (unsigned int)il);
			memcpy(data, id, (size_t)il);
			NAL_encode_bin(&w, &room, data, DATA_LEN);
			if (!DC_PLUG_write(p, 0, (unsigned long)sent, DC_CMD_ADD, req, (unsigned int)(w - req)) ||
			    !DC_PLUG_commit(p))
				break;
			sent++;
		}
		DC_PLUG_io(p);
		NAL_SELECTOR_select(sel, 100000, 1);
		gettimeofday(&tv, NULL);
		DC_SERVER_clients_io(srv, &tv);
		DC_PLUG_io(p);
		while (DC_PLUG_read(p, 0, &uid, &cmd, &d, &dl)) {
			if (dl != 1 || d[0] != 0)
				die("an ADD was refused");
			DC_PLUG_consume(p);
			acked++;
		}
	}
	DC_PLUG_free(p);
	NAL_SELECTOR_free(sel);
}

static void one(long n)
{
	int ns = (int)((n + PER_SERVER - 1) / PER_SERVER), i, f, fd[2];
	DC_SERVER **srv = calloc((size_t)(ns ? ns : 1), sizeof *srv);
	unsigned char *data = malloc(DATA_LEN);
	double lat[FORKS], bare[FORKS], child_ms = -1;
	long rss, peak, seen = -1;
	struct timeval tv;

	if (!srv || !data)
		die("out of memory");
	memset(data, 'x', DATA_LEN);
	DC_SERVER_set_default_cache();
	if (ns == 0 && !(srv[0] = DC_SERVER_new(PER_SERVER)))
		die("DC_SERVER_new failed");
	for (i = 0; i < ns; i++) {
		long k = n - (long)i * PER_SERVER < PER_SERVER ? n - (long)i * PER_SERVER : PER_SERVER;
		if (!(srv[i] = DC_SERVER_new(PER_SERVER)))
			die("DC_SERVER_new failed");
		fill(srv[i], (long)i * PER_SERVER, k, data);
	}
	rss = ct_status_kb("VmRSS");
	{
		int cr = open("/proc/self/clear_refs", O_WRONLY);
		if (cr < 0 || write(cr, "5", 1) != 1)
			die("cannot reset the peak RSS (/proc/self/clear_refs)");
		close(cr);
	}
	for (f = 0; f < 2 * FORKS; f++) {
		double t0, t1;
		pid_t pid;
		int st;

		if (pipe(fd) != 0)
			die("pipe");
		if (f % 2)
			setenv("DISTCACHE_NO_FORK_RESTORE", "1", 1);
		else
			unsetenv("DISTCACHE_NO_FORK_RESTORE");
		t0 = (ct_now_us() / 1e3);
		pid = fork();
		if (pid == 0) {
			double r[2];
			long total = 0;
			close(fd[0]);
			/* the first fork's child reports; the others leave at once */
			if (f == 0) {
				gettimeofday(&tv, NULL);
				for (i = 0; i < (ns ? ns : 1); i++)
					total += DC_SERVER_items_stored(srv[i], &tv);
				r[0] = (ct_now_us() / 1e3) - t0;
				r[1] = (double)total;
				if (write(fd[1], r, sizeof r) != (ssize_t)sizeof r)
					_exit(1);
			}
			_exit(0);
		}
		t1 = (ct_now_us() / 1e3);
		if (pid < 0)
			die("fork");
		if (f % 2)
			bare[f / 2] = t1 - t0;
		else
			lat[f / 2] = t1 - t0;
		close(fd[1]);
		if (f == 0) {
			double r[2];
			if (read(fd[0], r, sizeof r) == (ssize_t)sizeof r) {
				child_ms = r[0];
				seen = (long)r[1];
			}
		}
		close(fd[0]);
		waitpid(pid, &st, 0);
	}
	peak = ct_status_kb("VmHWM");
	unsetenv("DISTCACHE_NO_FORK_RESTORE");
	qsort(lat, FORKS, sizeof *lat, ct_cmp_double);
	qsort(bare, FORKS, sizeof *bare, ct_cmp_double);
	printf("%9ld %7d %9.2f %9.2f %9.2f %9.1f %9.1f %11.1f %9ld%s\n", n, ns, lat[FORKS / 2], lat[FORKS - 1],
		bare[FORKS / 2],
		rss / 1024.0, peak / 1024.0, child_ms, seen, seen == n ? "" : "  MISMATCH");
	for (i = 0; i < (ns ? ns : 1); i++)
		DC_SERVER_free(srv[i]);
	free(srv);
	free(data);
	exit(seen == n ? 0 : 1);
}

int main(int argc, char **argv)
{
	static const char *const def[] = { "0", "60000", "1000000" };
	const char *const *sizes = def;
	int n = 3, i, bad = 0;

	if (argc == 3 && strcmp(argv[1], "-n") == 0) {
		one(atol(argv[2]));
		return 0;
	}
	if (argc > 1) {
		sizes = (const char *const *)argv + 1;
		n = argc - 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("fork() with DC_SERVER caches of N sessions of %d bytes (median and worst of %d forks; bare: "
		"median of as many with the snapshot off, the kernel's share)\n",
		DATA_LEN, FORKS);
	printf("%9s %7s %9s %9s %9s %9s %9s %11s %9s\n", "sessions", "servers", "fork ms", "worst ms",
		"bare ms", "RSS MiB", "peak MiB", "child 1st ms", "child n");
	for (i = 0; i < n; i++) {
		pid_t pid = fork();
		int st;

		if (pid == 0) {
			execl("/proc/self/exe", argv[0], "-n", sizes[i], (char *)NULL);
			_exit(127);
		}
		waitpid(pid, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad = 1;
	}
	return bad;
}
