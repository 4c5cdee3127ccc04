/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A DC_SERVER's default cache across fork() (t_forkcache): the parent fills
 * a server to its bound with sessions of varied sizes and lifetimes (some
 * removed, others added in their place), on a clock of its own (every
 * call is given "now"), then forks.  The child must see every session with
 * its data, its remaining lifetime to the microsecond (live at its expiry
 * instant, gone 1 us later) and the parent's eviction order (an add into
 * the full cache drops the soonest to expire, ties in the order they were
 * added), and so must a grandchild (sessions from both generations'
 * memory); the parent must go on using its cache after the fork; and
 * fork() must not copy the caches (the parent's peak resident memory grows
 * by less than a tenth of what the sessions hold).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <distcache/dc_plug.h>
#include <distcache/dc_server.h>
#include "ct.h"

#define MAX 3000	/* the server's bound, and what the parent stores */
#define STEPS 10	/* lifetimes: 60 s + (i % STEPS) s */
#define BIG 20000	/* a second server holding this many 1.5 KB sessions */
#define IDS (MAX + 200)

static DC_SERVER *srv, *big;
static NAL_SELECTOR *sel;
static DC_PLUG *cli, *bigcli;
static struct timeval t0;	/* the test's clock: every call gets t0 + offset */
static long expiry[IDS];	/* ms after t0; -1: not stored */

static struct timeval at(long ms, long us)
{
	long long v = (long long)t0.tv_sec * 1000000 + (long long)ms * 1000 + us;
	struct timeval t;

	t.tv_sec = (time_t)(v / 1000000);
	t.tv_usec = (suseconds_t)(v % 1000000);
	return t;
}

static long data_len(int i) { return i >= 100000 ? 1500 : i == 7 ? 32000 : 2 + (i * 53) % 4000; }

static void fill_data(unsigned char *d, int i, long n)
{
	long k;

	for (k = 0; k < n; k++)
		d[k] = (unsigned char)(i * 31 + k * 7);
}

/* A client plug over a new pair, served by s. */
static DC_PLUG *client(DC_SERVER *s)
{
	NAL_CONNECTION *c = NAL_CONNECTION_new(), *sc = NAL_CONNECTION_new();
	DC_PLUG *p = NULL;

	if (c && sc && NAL_CONNECTION_create_pair(c, sc, 32768) && NAL_CONNECTION_add_to_selector(sc, sel) &&
	    DC_SERVER_new_client(s, sc, DC_CLIENT_FLAG_IN_SERVER) && (p = DC_PLUG_new(c, DC_PLUG_FLAG_TO_SERVER)) &&
	    DC_PLUG_to_select(p, sel))
		return p;
	return NULL;
}

/* One request through plug p, answered by s at the time now; the answer's
 * bytes in out (*outl).  0 if no answer came. */
static int request(DC_SERVER *s, DC_PLUG *p, DC_CMD cmd, const unsigned char *q, unsigned int ql,
		struct timeval now, unsigned char *out, unsigned int *outl)
{
	static unsigned long uid;
	unsigned long u;
	DC_CMD c;
	const unsigned char *d;
	unsigned int dl;
	int i;

	if (!p || !DC_PLUG_write(p, 0, ++uid, cmd, q, ql) || !DC_PLUG_commit(p))
		return 0;
	for (i = 0; i < 1000; i++) {
		DC_PLUG_io(p);
		NAL_SELECTOR_select(sel, 10000, 1);
		DC_SERVER_clients_io(s, &now);
		DC_PLUG_io(p);
		if (DC_PLUG_read(p, 0, &u, &c, &d, &dl)) {
			int ok = u == uid && c == cmd;
			memcpy(out, d, dl);
			*outl = dl;
			DC_PLUG_consume(p);
			return ok;
		}
	}
	return 0;
}

static int idfmt(char *id, int i) { return snprintf(id, 32, "fc-%05d", i); }

/* ADD session i for ms milliseconds at now; 1 if stored. */
static int add(DC_SERVER *s, DC_PLUG *p, int i, unsigned long ms, long dl, struct timeval now)
{
	static unsigned char req[40000], d[32768];
	unsigned char out[64], *w = req;
	unsigned int room = sizeof req, ol = 0;
	char id[32];
	int il = idfmt(id, i);

	fill_data(d, i, dl);
	NAL_encode_uint32(&w, &room, ms);
	NAL_encode_uint32(&w, &room, (unsigned long)il);
	NAL_encode_bin(&w, &room, (const unsigned char *)id, (unsigned int)il);
	NAL_encode_bin(&w, &room, d, (unsigned int)dl);
	return request(s, p, DC_CMD_ADD, req, (unsigned int)(w - req), now, out, &ol) && ol == 1 && out[0] == 0;
}

/* 1 if session i is there with its data, 0 if missing or wrong. */
static int get(DC_SERVER *s, DC_PLUG *p, int i, struct timeval now)
{
	static unsigned char out[40000], want[32768];
	unsigned int ol = 0;
	char id[32];
	int il = idfmt(id, i);

	if (!request(s, p, DC_CMD_GET, (const unsigned char *)id, (unsigned int)il, now, out, &ol))
		return 0;
	fill_data(want, i, data_len(i));
	return ol == (unsigned int)data_len(i) && memcmp(out, want, ol) == 0;
}

static int del(DC_SERVER *s, DC_PLUG *p, int i, struct timeval now)
{
	unsigned char out[64];
	unsigned int ol = 0;
	char id[32];
	int il = idfmt(id, i);

	return request(s, p, DC_CMD_REMOVE, (const unsigned char *)id, (unsigned int)il, now, out, &ol) &&
		ol == 1 && out[0] == 0;
}

static unsigned int stored_after(long ms)	/* expected count, strictly later */
{
	unsigned int n = 0;
	int i;

	for (i = 0; i < IDS; i++)
		if (expiry[i] > ms)
			n++;
	return n;
}

/* The child's checks; its exit status says which failed first. */
static int child(void)
{
	struct timeval now = at(0, 0);
	int i, j, n;

	if (DC_SERVER_items_stored(srv, &now) != MAX)
		return 2;
	for (i = 0; i < IDS; i++)
		if (get(srv, cli, i, now) != (expiry[i] >= 0))
			return 3;
	/* Full: one more add drops MAX/30 sessions, the soonest to expire
	 * (lifetime 60 s: the i % STEPS == 0 ones, then those added in the
	 * place of the removed ones), ties in the order they were added. */
	if (!add(srv, cli, IDS - 1, 3600000, data_len(IDS - 1), now))
		return 4;
	expiry[IDS - 1] = 3600000;
	for (i = 0, n = 0; i < MAX && n < MAX / 30; i += STEPS)
		if (expiry[i] >= 0) {
			expiry[i] = -1;
			n++;
		}
	for (i = 0; i < IDS; i++)
		if (get(srv, cli, i, now) != (expiry[i] >= 0))
			return 5;
	/* A grandchild takes over this child's cache in turn: the parent's
	 * sessions (still in the first image) and this child's own. */
	{
		pid_t g = fork();
		int st;
		if (g == 0) {
			if (DC_SERVER_items_stored(srv, &now) != MAX - MAX / 30 + 1)
				_exit(1);
			for (i = 0; i < IDS; i++)
				if (get(srv, cli, i, now) != (expiry[i] >= 0))
					_exit(1);
			_exit(0);
		}
		if (g < 0 || waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			return 8;
	}
	/* Lifetimes: live at the expiry instant, gone 1 us later. */
	for (j = 0; j < STEPS; j++) {
		long ms = 60000 + j * 1000L;
		now = at(ms, 0);
		if (DC_SERVER_items_stored(srv, &now) != stored_after(ms - 1))
			return 6;
		now = at(ms, 1);
		if (DC_SERVER_items_stored(srv, &now) != stored_after(ms))
			return 7;
	}
	return 0;
}


int main(void)
{
	struct timeval now;
	int i, ok, st, cr;
	long rss, peak;
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	CT_PLAN(7);
	gettimeofday(&t0, NULL);
	t0.tv_usec = 0;	/* expiries fall on whole microseconds of t0 + lifetime */
	now = at(0, 0);
	for (i = 0; i < IDS; i++)
		expiry[i] = -1;
	DC_SERVER_set_default_cache();
	sel = NAL_SELECTOR_new();
	srv = DC_SERVER_new(MAX);
	big = DC_SERVER_new(60000);
	cli = sel && srv ? client(srv) : NULL;
	bigcli = big ? client(big) : NULL;
	CHECK(cli && bigcli, "parent: two servers with a client each");

	for (i = 0, ok = 1; ok && i < MAX; i++) {
		ok = add(srv, cli, i, 60000 + (i % STEPS) * 1000UL, data_len(i), now);
		expiry[i] = 60000 + (i % STEPS) * 1000L;
	}
	/* Remove some; add others in their place (their slots come first in
	 * the cache's storage, their turn to be evicted comes last). */
	for (i = 3; ok && i < MAX; i += 97) {
		ok = del(srv, cli, i, now);
		expiry[i] = -1;
	}
	for (i = MAX; ok && i < MAX + (MAX + 93) / 97; i++) {
		ok = add(srv, cli, i, 60000, data_len(i), now);
		expiry[i] = 60000;
	}
	CHECK(ok && DC_SERVER_items_stored(srv, &now) == MAX, "parent: %d sessions of 2..32000 bytes stored, "
		"lifetimes 60..69 s, %d removed and others added in their place", MAX, (MAX + 93) / 97);
	for (i = 0, ok = 1; ok && i < BIG; i++)
		ok = add(big, bigcli, 100000 + i, 3600000, data_len(100000 + i), now);
	CHECK(ok && DC_SERVER_items_stored(big, &now) == BIG, "parent: a second server with %d sessions of 1500 bytes",
		BIG);

	rss = ct_status_kb("VmRSS");
	cr = open("/proc/self/clear_refs", O_WRONLY);
	ok = cr >= 0 && write(cr, "5", 1) == 1;	/* resets the peak (VmHWM) */
	if (cr >= 0)
		close(cr);
	alarm(120);	/* the parent must not hang on its own cache after fork() */
	pid = fork();
	if (pid == 0)
		_exit(child());
	peak = ct_status_kb("VmHWM");
	waitpid(pid, &st, 0);
	CHECK(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: every session with its data, its remaining "
		"lifetime to the microsecond and the parent's eviction order; a grandchild too (exit status %d)",
		WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	CHECK(ok && peak > 0 && peak - rss < BIG * 1500L / 1024 / 10, "fork() copies nothing of the caches: "
		"the parent's peak RSS grew by %ld KiB (the sessions hold %ld KiB)", peak - rss, BIG * 1500L / 1024);
	CHECK(DC_SERVER_items_stored(srv, &now) == MAX && DC_SERVER_items_stored(big, &now) == BIG,
		"parent: the child's changes are its own");
	CHECK(get(srv, cli, 0, now) && add(srv, cli, IDS - 2, 1000, data_len(IDS - 2), now) &&
		get(srv, cli, IDS - 2, now) && get(big, bigcli, 100000 + BIG - 1, now),
		"parent: both caches answer after the fork");
	alarm(0);
	DC_PLUG_free(cli);
	DC_PLUG_free(bigcli);
	DC_SERVER_free(srv);
	DC_SERVER_free(big);
	NAL_SELECTOR_free(sel);
	return ct_exit();
}
