/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One DC_CTX shared by 16 threads, 2000 verified operations each, no lock
 * in the caller (Apache worker/event MPMs): flags 0 and PERSISTENT.  And
 * 16 threads creating addresses from a set of strings larger than the
 * front's table of strings created before, so that they take each other's
 * place there while other threads' addresses still hold them.
 */
#include <pthread.h>
#include <unistd.h>
#include <string.h>
#include <libnal/nal.h>
#include <distcache/dc_client.h>
#include "ct.h"

#define THREADS 16
#define OPS 2000

static DC_CTX *ctx;
static unsigned int gflags;

static void *worker(void *arg)
{
	long t = (long)arg, bad = 0;
	unsigned char id[64], data[300], buf[512];
	unsigned int used, i;
	int k;

	for (k = 0; k < OPS / 2; k++) {
		snprintf((char *)id, sizeof id, "thr-%u-%ld-%d-%d", gflags, t, k, (int)getpid());
		for (i = 0; i < sizeof data; i++)
			data[i] = (unsigned char)(t * 31 + k * 7 + i);
		if (DC_CTX_add_session(ctx, id, (unsigned int)strlen((char *)id), data,
				sizeof data - (unsigned int)(k % 50), 600000) != 1)
			bad++;
		used = 0;
		if (DC_CTX_get_session(ctx, id, (unsigned int)strlen((char *)id), buf, sizeof buf, &used) != 1 ||
		    used != sizeof data - (unsigned int)(k % 50) || memcmp(buf, data, used) != 0)
			bad++;
	}
	return (void *)bad;
}

static void *addr_worker(void *arg)
{
	long t = (long)arg, bad = 0;
	char s[64];
	int k;

	for (k = 0; k < OPS; k++) {
		NAL_ADDRESS *a = NAL_ADDRESS_new();
		unsigned int size = (unsigned int)(t * 100 + k % 100);
		snprintf(s, sizeof s, "UNIX:/tmp/thr-%d.sock", (int)((t + k) % 150));
		if (!a || !NAL_ADDRESS_create(a, s, size))
			bad++;
		else if (k % 3 && (NAL_ADDRESS_get_def_buffer_size(a) != size || !NAL_ADDRESS_can_connect(a)))
			bad++;
		NAL_ADDRESS_free(a);
	}
	return (void *)bad;
}

/* THREADS threads of fn (each given its number): the sum of what they return. */
static long run_threads(void *(*fn)(void *))
{
	pthread_t th[THREADS];
	long t, bad = 0;
	void *r;

	for (t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, fn, (void *)t);
	for (t = 0; t < THREADS; t++) {
		pthread_join(th[t], &r);
		bad += (long)r;
	}
	return bad;
}

int main(int argc, char **argv)
{
	static const unsigned int fl[] = { 0, DC_CTX_FLAG_PERSISTENT };
	unsigned int f;
	long bad;

	if (argc != 2)
		return 2;
	CT_PLAN(2 * 2 + 1);
	for (f = 0; f < 2; f++) {
		gflags = fl[f];
		ctx = DC_CTX_new(argv[1], gflags);
		CHECK(ctx != NULL, "flags %#x: DC_CTX_new", gflags);
		if (!ctx)
			continue;
		bad = run_threads(worker);
		CHECK(bad == 0, "flags %#x: %d threads x %d verified operations on one DC_CTX: %ld failed or mismatched",
			gflags, THREADS, OPS, bad);
		DC_CTX_free(ctx);
	}
	bad = run_threads(addr_worker);
	CHECK(bad == 0, "%d threads x %d addresses created (from 150 strings) and checked: %ld wrong",
		THREADS, OPS, bad);
	return ct_exit();
}
