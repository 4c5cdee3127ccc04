/* SPDX-License-Identifier: Apache-2.0 */
/*
 * make bench (capi part, ORIG=/prefix): one C program built twice by
 * ctests/vsorig.sh, once against our libraries and once against those of a
 * distcache 1.5 installation, so the same source measures both.  Uses only
 * functions both headers declare.
 *
 *   vsorig objects            libnal object new/free and create cases
 *   vsorig latency TARGET N   DC_CTX add/get/remove, a connection per
 *                             operation (DC_CTX_new(target, 0), the Apache
 *                             pattern) and persistent
 *   vsorig spaced TARGET N GAP  N persistent DC_CTX GETs, one every GAP
 *                             microseconds (an Apache child between
 *                             handshakes): client CPU and voluntary
 *                             context switches per GET, every thread
 *
 * Each line is "case value unit": objects give CPU nanoseconds per
 * iteration (user + system, getrusage, as the original's nal_test counts);
 * latency gives the median microseconds of one call and the client's CPU
 * microseconds per call (every thread of the process: our engine's too),
 * and for a persistent GET the client's voluntary and involuntary context
 * switches per call (pinned to one CPU with the server: whether the client
 * blocks for its answer or is preempted by the server it woke).
 */
#include <stdio.h>
#include "ct.h"
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <libnal/nal.h>
#include <distcache/dc_client.h>

static double cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
}

static void fail(const char *what)
{
	fprintf(stderr, "vsorig: %s failed\n", what);
	exit(1);
}

/* One case: run BODY n times after one warm-up run, print CPU ns per run. */
#define CASE(name, n, body) do { \
	long i_; double c0_; \
	{ body } \
	c0_ = cpu_us(); \
	for (i_ = 0; i_ < (n); i_++) { body } \
	printf("%s %.1f ns\n", (name), (cpu_us() - c0_) * 1000 / (double)(n)); \
	fflush(stdout); \
} while (0)

static void objects(long n)
{
	static const unsigned char payload[64];

	CASE("new/free:NAL_ADDRESS", n, {
		NAL_ADDRESS *a = NAL_ADDRESS_new();
		if (!a) fail("NAL_ADDRESS_new");
		NAL_ADDRESS_free(a); });
	CASE("new/free:NAL_BUFFER", n, {
		NAL_BUFFER *b = NAL_BUFFER_new();
		if (!b) fail("NAL_BUFFER_new");
		NAL_BUFFER_free(b); });
	CASE("new/free:NAL_LISTENER", n, {
		NAL_LISTENER *l = NAL_LISTENER_new();
		if (!l) fail("NAL_LISTENER_new");
		NAL_LISTENER_free(l); });
	CASE("new/free:NAL_CONNECTION", n, {
		NAL_CONNECTION *c = NAL_CONNECTION_new();
		if (!c) fail("NAL_CONNECTION_new");
		NAL_CONNECTION_free(c); });
	CASE("new/free:NAL_SELECTOR", n, {
		NAL_SELECTOR *s = NAL_SELECTOR_new();
		if (!s) fail("NAL_SELECTOR_new");
		NAL_SELECTOR_free(s); });
	CASE("new/create(IP:9001)/free:NAL_ADDRESS", n / 4, {
		NAL_ADDRESS *a = NAL_ADDRESS_new();
		if (!a || !NAL_ADDRESS_create(a, "IP:9001", 2048)) fail("NAL_ADDRESS_create");
		NAL_ADDRESS_free(a); });
	CASE("new/create(IP:127.0.0.1:9001)/free:NAL_ADDRESS", n / 4, {
		NAL_ADDRESS *a = NAL_ADDRESS_new();
		if (!a || !NAL_ADDRESS_create(a, "IP:127.0.0.1:9001", 2048)) fail("NAL_ADDRESS_create");
		NAL_ADDRESS_free(a); });
	CASE("new/create(IP:localhost:9001)/free:NAL_ADDRESS", n / 200, {
		NAL_ADDRESS *a = NAL_ADDRESS_new();
		if (!a || !NAL_ADDRESS_create(a, "IP:localhost:9001", 2048)) fail("NAL_ADDRESS_create");
		NAL_ADDRESS_free(a); });
	CASE("new/create(UNIX:/tmp/foo)/free:NAL_ADDRESS", n / 4, {
		NAL_ADDRESS *a = NAL_ADDRESS_new();
		if (!a || !NAL_ADDRESS_create(a, "UNIX:/tmp/foo", 2048)) fail("NAL_ADDRESS_create");
		NAL_ADDRESS_free(a); });
	CASE("new/set_size(2kb)/free:NAL_BUFFER", n / 4, {
		NAL_BUFFER *b = NAL_BUFFER_new();
		if (!b || !NAL_BUFFER_set_size(b, 2048)) fail("NAL_BUFFER_set_size");
		NAL_BUFFER_free(b); });
	CASE("new/set_size(32kb)/free:NAL_BUFFER", n / 4, {
		NAL_BUFFER *b = NAL_BUFFER_new();
		if (!b || !NAL_BUFFER_set_size(b, 32768)) fail("NAL_BUFFER_set_size");
		NAL_BUFFER_free(b); });
	CASE("new/set_size(2kb)/write(64)/free:NAL_BUFFER", n / 4, {
		NAL_BUFFER *b = NAL_BUFFER_new();
		if (!b || !NAL_BUFFER_set_size(b, 2048) || NAL_BUFFER_write(b, payload, 64) != 64)
			fail("NAL_BUFFER_write");
		NAL_BUFFER_free(b); });
}

/* the process's voluntary (0) or involuntary (1) context switches */
static double csw(int involuntary)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(involuntary ? ru.ru_nivcsw : ru.ru_nvcsw);
}

static void latency(const char *target, int n)
{
	static const char *const ops[] = { "add", "get", "remove" };
	unsigned char id[64], data[200], buf[1024];
	double *t = malloc(sizeof *t * (size_t)n), c0;
	unsigned int used, idl;
	int mode, op, i;

	if (!t)
		fail("malloc");
	memset(data, 'd', sizeof data);
	for (mode = 0; mode < 2; mode++) {
		DC_CTX *c = DC_CTX_new(target, mode ? DC_CTX_FLAG_PERSISTENT : 0);
		const char *m = mode ? "persistent" : "conn-per-op";
		if (!c)
			fail("DC_CTX_new");
		for (op = 0; op < 3; op++) {
			double v0 = csw(0), i0 = csw(1);

			c0 = cpu_us();
			for (i = 0; i < n; i++) {
				double t0;
				int ok;
				idl = (unsigned int)snprintf((char *)id, sizeof id, "vsorig-%d-%d-%ld", mode, i, (long)getpid());
				t0 = ct_now_us();
				if (op == 0)
					ok = DC_CTX_add_session(c, id, idl, data, sizeof data, 600000);
				else if (op == 1)
					ok = DC_CTX_get_session(c, id, idl, buf, sizeof buf, &used) && used == sizeof data;
				else
					ok = DC_CTX_remove_session(c, id, idl);
				t[i] = ct_now_us() - t0;
				if (!ok)
					fail(ops[op]);
			}
			printf("%s:%s:cpu %.2f us\n", m, ops[op], (cpu_us() - c0) / n);
			printf("%s:%s %.2f us\n", m, ops[op], ct_median(t, n));
			if (mode && op == 1) {
				printf("%s:%s:vcsw %.2f n\n", m, ops[op], (csw(0) - v0) / n);
				printf("%s:%s:ivcsw %.2f n\n", m, ops[op], (csw(1) - i0) / n);
			}
		}
		DC_CTX_free(c);
	}
	free(t);
}

/* What a call costs when the caller was idle before it: the idle gap is a
 * nanosleep, so its own two context switches (sleep, wake-up) and its
 * timer are in the figures of both libraries. */
static void spaced(const char *target, int n, int gap_us)
{
	unsigned char id[64], data[200], buf[1024];
	unsigned int used, idl;
	struct timespec ts = { 0, gap_us * 1000L };
	DC_CTX *c = DC_CTX_new(target, DC_CTX_FLAG_PERSISTENT);
	double c0, s0;
	int i;

	if (!c)
		fail("DC_CTX_new");
	memset(data, 's', sizeof data);
	idl = (unsigned int)snprintf((char *)id, sizeof id, "vsorig-spaced-%ld", (long)getpid());
	if (!DC_CTX_add_session(c, id, idl, data, sizeof data, 600000))
		fail("add");
	for (i = 0; i < 20; i++)	/* warm: the engine, the connection */
		if (!DC_CTX_get_session(c, id, idl, buf, sizeof buf, &used))
			fail("get");
	c0 = cpu_us();
	s0 = csw(0);
	for (i = 0; i < n; i++) {
		nanosleep(&ts, NULL);
		if (!DC_CTX_get_session(c, id, idl, buf, sizeof buf, &used) || used != sizeof data)
			fail("get");
	}
	printf("spaced-%dus:get:cpu %.2f us\n", gap_us, (cpu_us() - c0) / n);
	printf("spaced-%dus:get:cswitch %.2f n\n", gap_us, (csw(0) - s0) / n);
	DC_CTX_remove_session(c, id, idl);
	DC_CTX_free(c);
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "objects") == 0) {
		objects(argc > 2 ? atol(argv[2]) : 200000);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "latency") == 0) {
		latency(argv[2], argc > 3 ? atoi(argv[3]) : 2000);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "spaced") == 0) {
		spaced(argv[2], argc > 3 ? atoi(argv[3]) : 300, argc > 4 ? atoi(argv[4]) : 2000);
		return 0;
	}
	fprintf(stderr, "usage: vsorig objects [N] | vsorig latency TARGET [N] | vsorig spaced TARGET [N [GAP_US]]\n");
	return 2;
}
