/* SPDX-License-Identifier: Apache-2.0 */
/*
 * make bench (capi part): through our ABI against a running server,
 * connect-per-operation (Apache's pattern) and persistent DC_CTX add/get
 * latency, beside a raw C client doing the same wire exchange with plain
 * sockets (the floor); medians and ratios.  Also the engine's first-call
 * latency and the RSS a process gains by loading it.  Usage: bench TARGET
 * (UNIX:path only), ops per series as the second argument (default 2000).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <distcache/dc_client.h>
#include <libnal/nal.h>
#include <stdio.h>
#include "ct.h"


/* ---- the raw client: one frame out, one frame in ---- */
static const char *path;

static int raw_connect(void)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		abort();
	return fd;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

/* op: 0 ADD, 1 GET. Returns the response payload length. */
static int raw_op(int fd, uint32_t uid, int op, const unsigned char *p, unsigned int n)
{
	unsigned char f[14 + 2048], r[14 + 2048];
	size_t got = 0, want = 14;

	put32(f, 0x00110000);
	f[4] = 0;
	put32(f + 5, uid);
	f[9] = 0;
	f[10] = (unsigned char)op;
	f[11] = 1;
	f[12] = (unsigned char)(n >> 8);
	f[13] = (unsigned char)n;
	memcpy(f + 14, p, n);
	if (send(fd, f, 14 + n, MSG_NOSIGNAL) != (ssize_t)(14 + n))
		abort();
	while (got < want) {
		ssize_t k = read(fd, r + got, want - got);
		if (k <= 0)
			abort();
		got += (size_t)k;
		if (got == 14)
			want = 14 + (size_t)((r[12] << 8) | r[13]);
	}
	return (int)want - 14;
}

int main(int argc, char **argv)
{
	int n = argc > 2 ? atoi(argv[2]) : 2000, i, mode;
	double *t = malloc(sizeof *t * (size_t)n), *t2 = malloc(sizeof *t2 * (size_t)n), t0, first;
	double res[2][2][2];	/* [persistent][raw/abi][add/get] */
	unsigned char id[32], data[200], buf[1024], addp[8 + 32 + 200];
	unsigned int used;
	long r0, r1, a0, a1;
	NAL_ADDRESS *a;

	if (argc < 2 || strncmp(argv[1], "UNIX:", 5) != 0) {
		fprintf(stderr, "usage: bench UNIX:path [ops]\n");
		return 2;
	}
	path = argv[1] + 5;
	memset(data, 'd', sizeof data);

	/* first-call latency: median over 7 fresh processes (forked before any
	 * engine is loaded, so each loads it from the file like an Apache child) */
	{
		double f[7];
		int k, pfd[2];
		for (k = 0; k < 7; k++) {
			pid_t pid;
			if (pipe(pfd) != 0 || (pid = fork()) < 0)
				abort();
			if (pid == 0) {
				t0 = ct_now_us();
				NAL_ADDRESS_free(NAL_ADDRESS_new());
				f[0] = ct_now_us() - t0;
				if (write(pfd[1], f, sizeof f[0]) != sizeof f[0])
					_exit(1);
				_exit(0);
			}
			if (read(pfd[0], &f[k], sizeof f[k]) != sizeof f[k])
				abort();
			close(pfd[0]);
			close(pfd[1]);
			waitpid(pid, NULL, 0);
		}
		printf("engine first call (load + Go runtime start + one call), median of 7 processes: %.2f ms\n",
			ct_median(f, 7) / 1000);
	}
	r0 = ct_status_kb("VmRSS");
	a0 = ct_status_kb("RssAnon");
	t0 = ct_now_us();
	a = NAL_ADDRESS_new();	/* the first call that needs the engine */
	first = ct_now_us() - t0;
	r1 = ct_status_kb("VmRSS");
	a1 = ct_status_kb("RssAnon");
	NAL_ADDRESS_free(a);
	printf("this process: first call %.2f ms; RSS +%.2f MiB (%ld -> %ld KiB), of which private "
		"(RssAnon) +%.2f MiB; the rest is the engine file's pages, shared by every "
		"process that loads it from the file\n",
		first / 1000, (r1 - r0) / 1024.0, r0, r1, (a1 - a0) / 1024.0);

	for (mode = 0; mode < 2; mode++) {
		DC_CTX *c = DC_CTX_new(argv[1], mode ? DC_CTX_FLAG_PERSISTENT : 0);
		int fd = mode ? raw_connect() : -1, op;
		for (op = 0; op < 2; op++) {
			/* raw and ABI operations alternate, so that load from
			 * elsewhere on the machine hits both series alike */
			for (i = 0; i < n; i++) {
				unsigned int idl = (unsigned int)snprintf((char *)id, sizeof id, "raw-%d-%d-%d", mode, i, getpid());
				int f = mode ? fd : raw_connect();
				t0 = ct_now_us();
				if (op == 0) {
					put32(addp, 600000);
					put32(addp + 4, idl);
					memcpy(addp + 8, id, idl);
					memcpy(addp + 8 + idl, data, sizeof data);
					raw_op(f, (uint32_t)i, 0, addp, 8 + idl + (unsigned int)sizeof data);
				} else {
					raw_op(f, (uint32_t)i, 1, id, idl);
				}
				if (!mode)
					close(f);
				t[i] = ct_now_us() - t0;

				idl = (unsigned int)snprintf((char *)id, sizeof id, "abi-%d-%d-%d", mode, i, getpid());
				t0 = ct_now_us();
				if (op == 0) {
					if (!DC_CTX_add_session(c, id, idl, data, sizeof data, 600000))
						abort();
				} else if (!DC_CTX_get_session(c, id, idl, buf, sizeof buf, &used)) {
					abort();
				}
				t2[i] = ct_now_us() - t0;
			}
			res[mode][0][op] = ct_median(t, n);
			res[mode][1][op] = ct_median(t2, n);
		}
		DC_CTX_free(c);
		if (fd >= 0)
			close(fd);
	}
	for (mode = 0; mode < 2; mode++)
		printf("%-22s add: raw %6.1f us, DC_CTX %6.1f us, ratio %.2f | get: raw %6.1f us, DC_CTX %6.1f us, ratio %.2f\n",
			mode ? "persistent:" : "connect-per-op:",
			res[mode][0][0], res[mode][1][0], res[mode][1][0] / res[mode][0][0],
			res[mode][0][1], res[mode][1][1], res[mode][1][1] / res[mode][0][1]);
	free(t);
	free(t2);
	return 0;
}
