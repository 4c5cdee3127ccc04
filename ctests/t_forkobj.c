/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fork matrix for every object kind (t_forkobj SCRATCHDIR): objects are
 * made and used in the parent, then a forked child (a fresh engine) uses
 * them: address, buffer, connection pair with buffered bytes, listener on a
 * selector, plug holding an unread message, DC_SERVER with a stored session
 * and an IN_SERVER client.  Then the original tools' pattern (listener and
 * DC_SERVER made, then daemon(), the daemon serves DC_CTX clients), and
 * DISTCACHE_NO_FORK_RESTORE: objects that cannot be restored fail cleanly.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <distcache/dc_client.h>
#include <distcache/dc_plug.h>
#include <distcache/dc_server.h>
#include "ct.h"

static NAL_ADDRESS *addr;
static NAL_SELECTOR *sel;
static NAL_LISTENER *lis;
static NAL_CONNECTION *p1, *p2;
static NAL_BUFFER *buf;
static DC_PLUG *q1, *q2, *s1;
static DC_SERVER *srv;
static NAL_ADDRESS *fresh_a;	/* made in the parent, never used there */
static NAL_CONNECTION *fresh_c;
static NAL_BUFFER *fresh_b;	/* sized and written in the parent (storage in the handle), never used */
static NAL_ADDRESS *again_a;	/* created in the parent with a string created before, never used */
static struct timeval now;

/* Run fn in a child with a deadline; 1 if it exited 0. */
static int in_child(int (*fn)(void), int seconds)
{
	pid_t pid = fork();
	time_t end = time(NULL) + seconds;
	int st;

	if (pid == 0)
		_exit(fn() == 0 ? 0 : 1);
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (time(NULL) > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			printf("# child hung: killed\n");
			return 0;
		}
		usleep(10000);
	}
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Pump the selector until cond() or 5 s. */
static int until(int (*cond)(void))
{
	int i;

	for (i = 0; i < 50; i++) {
		if (cond())
			return 1;
		NAL_SELECTOR_select(sel, 100000, 1);
		NAL_CONNECTION_io(p1);
		NAL_CONNECTION_io(p2);
		DC_PLUG_io(q1);
		DC_PLUG_io(q2);
		DC_PLUG_io(s1);
		gettimeofday(&now, NULL);
		DC_SERVER_clients_io(srv, &now);
	}
	return cond();
}

static int p2_has_more(void) { return NAL_BUFFER_used(NAL_CONNECTION_get_read(p2)) >= 8; }
static int q2_full(void)
{
	unsigned long u; DC_CMD c; const unsigned char *d; unsigned int n;
	return DC_PLUG_read(q2, 1, &u, &c, &d, &n);
}
static int q1_full(void)
{
	unsigned long u; DC_CMD c; const unsigned char *d; unsigned int n;
	return DC_PLUG_read(q1, 1, &u, &c, &d, &n);
}
static int s1_full(void)
{
	unsigned long u; DC_CMD c; const unsigned char *d; unsigned int n;
	return DC_PLUG_read(s1, 1, &u, &c, &d, &n);
}

static int child_address(void)
{
	return !(NAL_ADDRESS_can_connect(addr) == 1 && NAL_ADDRESS_get_def_buffer_size(addr) == 4096);
}

static int child_buffer(void)
{
	return !(NAL_BUFFER_used(buf) == 5 && memcmp(NAL_BUFFER_data(buf), "hello", 5) == 0 &&
		NAL_BUFFER_write(buf, U("!"), 1) == 1 && memcmp(NAL_BUFFER_data(buf), "hello!", 6) == 0);
}

static int child_pair(void)
{
	NAL_BUFFER *r = NAL_CONNECTION_get_read(p2);
	/* "abcd" arrived before the fork; "efgh" goes now */
	if (NAL_BUFFER_used(r) != 4 || memcmp(NAL_BUFFER_data(r), "abcd", 4) != 0)
		return 1;
	NAL_BUFFER_write(NAL_CONNECTION_get_send(p1), U("efgh"), 4);
	return !(until(p2_has_more) && memcmp(NAL_BUFFER_data(r), "abcdefgh", 8) == 0);
}

static int child_listener(void)
{
	NAL_CONNECTION *c = NAL_CONNECTION_new(), *s = NAL_CONNECTION_new();
	int i;

	if (!NAL_CONNECTION_create(c, addr))
		return 1;
	for (i = 0; i < 50; i++) {
		NAL_SELECTOR_select(sel, 100000, 1);
		if (NAL_CONNECTION_accept(s, lis))
			return 0;
	}
	return 1;
}

static int child_plug(void)
{
	unsigned long u;
	DC_CMD c;
	const unsigned char *d;
	unsigned int n;

	if (!DC_PLUG_read(q2, 1, &u, &c, &d, &n) || u != 42 || c != DC_CMD_HAVE || n != 3 || memcmp(d, "sid", 3))
		return 1;
	if (!DC_PLUG_consume(q2) || !DC_PLUG_write(q2, 0, 42, DC_CMD_HAVE, U("\0"), 1) || !DC_PLUG_commit(q2))
		return 1;
	return !(until(q1_full) && DC_PLUG_read(q1, 1, &u, &c, &d, &n) && u == 42 && n == 1 && d[0] == 0);
}

static int child_server(void)
{
	unsigned long u;
	DC_CMD c;
	const unsigned char *d;
	unsigned int n;

	gettimeofday(&now, NULL);
	if (DC_SERVER_items_stored(srv, &now) != 1)
		return 1;
	if (!DC_PLUG_write(s1, 0, 9, DC_CMD_GET, U("fork-session"), 12) || !DC_PLUG_commit(s1))
		return 1;
	return !(until(s1_full) && DC_PLUG_read(s1, 1, &u, &c, &d, &n) && u == 9 && n == 11 &&
		memcmp(d, "session-bytes", 11) == 0 && DC_SERVER_num_operations(srv) >= 2);
}

static int child_stale(void)
{
	gettimeofday(&now, NULL);
	/* every call fails at once instead of hanging or crashing */
	return !(NAL_ADDRESS_can_connect(addr) == 0 && NAL_BUFFER_used(buf) == 0 &&
		NAL_SELECTOR_select(sel, 1000000, 0) == -1 && NAL_CONNECTION_io(p2) == 0 &&
		DC_PLUG_io(q1) == 0 && DC_SERVER_items_stored(srv, &now) == 0 &&
		DC_SERVER_clients_io(srv, &now) == 0);
}

/* A handle made before fork() and never used has no engine object yet: it
 * works in the child even without restore, as a fresh one (an address
 * created with a string created before, as a created one; a buffer only
 * sized and written, with its size and contents). */
static int child_fresh(void)
{
	NAL_CONNECTION *peer = NAL_CONNECTION_new();

	return !(NAL_ADDRESS_create(fresh_a, "IP:127.0.0.1:9", 4096) && NAL_ADDRESS_can_connect(fresh_a) &&
		NAL_ADDRESS_can_connect(again_a) && NAL_ADDRESS_get_def_buffer_size(again_a) == 777 &&
		!NAL_ADDRESS_create(again_a, "IP:127.0.0.1:7", 777) &&
		peer && NAL_CONNECTION_create_pair(fresh_c, peer, 4096) &&
		NAL_BUFFER_write(NAL_CONNECTION_get_send(fresh_c), (const unsigned char *)"x", 1) == 1 &&
		NAL_BUFFER_size(fresh_b) == 16 && NAL_BUFFER_used(fresh_b) == 2 &&
		NAL_BUFFER_write(fresh_b, U("abcdefghijklmnopq"), 17) == 14 &&
		memcmp(NAL_BUFFER_data(fresh_b), "xyabcdefghijklmn", 16) == 0);
}

/* The original dc_server's pattern: listener + server, then daemon(). */
static int daemon_pattern(const char *dir)
{
	char a[300], pidf[300];
	pid_t pid;
	int st, ok = 1, i;
	FILE *f;

	snprintf(a, sizeof a, "UNIX:%s/daemon.sock", dir);
	snprintf(pidf, sizeof pidf, "%s/daemon.pid", dir);
	unlink(pidf);
	pid = fork();
	if (pid == 0) {
		NAL_ADDRESS *da = NAL_ADDRESS_new();
		NAL_LISTENER *dl = NAL_LISTENER_new();
		NAL_SELECTOR *ds = NAL_SELECTOR_new();
		DC_SERVER *dsrv;
		NAL_CONNECTION *nc = NAL_CONNECTION_new();
		struct timeval t;

		DC_SERVER_set_default_cache();
		dsrv = DC_SERVER_new(512);
		if (!NAL_ADDRESS_create(da, a, 4096) || !NAL_LISTENER_create(dl, da) ||
		    !NAL_LISTENER_add_to_selector(dl, ds) || !dsrv || daemon(1, 1) != 0)
			_exit(1);
		f = fopen(pidf, "w");
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
		for (;;) {
			gettimeofday(&t, NULL);
			if (NAL_SELECTOR_select(ds, 500000, 1) < 0)
				continue;
			while (NAL_CONNECTION_accept(nc, dl)) {
				if (!NAL_CONNECTION_add_to_selector(nc, ds) ||
				    !DC_SERVER_new_client(dsrv, nc, DC_CLIENT_FLAG_IN_SERVER))
					_exit(2);
				nc = NAL_CONNECTION_new();
			}
			DC_SERVER_clients_io(dsrv, &t);
		}
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon(): the parent side exits 0");
	for (i = 0; i < 200 && access(pidf, F_OK) != 0; i++)
		usleep(50000);
	{
		DC_CTX *c = DC_CTX_new(a, 0);
		unsigned char out[64];
		unsigned int used = 0;
		/* the daemon loads a fresh engine at its first select, which
		 * may take longer than the context's bound (100 ms): wait for
		 * its first answer (a timeout puts the context on probation
		 * until then) */
		for (i = 0; i < 1000 && c && DC_CTX_has_session(c, U("d-id"), 4) == -1; i++)
			usleep(10000);
		ok = c && DC_CTX_add_session(c, U("d-id"), 4, U("daemon-data"), 11, 60000) == 1 &&
			DC_CTX_get_session(c, U("d-id"), 4, out, sizeof out, &used) == 1 && used == 11 &&
			memcmp(out, "daemon-data", 11) == 0 && DC_CTX_has_session(c, U("d-id"), 4) == 1;
		DC_CTX_free(c);
	}
	CHECK(ok, "daemon(): the daemon serves DC_CTX add/get/has with the listener and DC_SERVER made before daemon()");
	f = fopen(pidf, "r");
	if (f) {
		int dp = 0;
		if (fscanf(f, "%d", &dp) == 1 && dp > 0)
			kill(dp, SIGTERM);
		fclose(f);
	}
	return ok;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	char a[300];
	unsigned char req[64], *w = req;
	unsigned int room = sizeof req;
	NAL_CONNECTION *q1c = NAL_CONNECTION_new(), *q2c = NAL_CONNECTION_new();
	NAL_CONNECTION *s1c = NAL_CONNECTION_new(), *s2c = NAL_CONNECTION_new();

	setvbuf(stdout, NULL, _IONBF, 0);
	CT_PLAN(19);
	snprintf(a, sizeof a, "UNIX:%s/forkobj.sock", dir);
	addr = NAL_ADDRESS_new();
	sel = NAL_SELECTOR_new();
	lis = NAL_LISTENER_new();
	p1 = NAL_CONNECTION_new();
	p2 = NAL_CONNECTION_new();
	buf = NAL_BUFFER_new();
	fresh_a = NAL_ADDRESS_new();
	fresh_c = NAL_CONNECTION_new();
	fresh_b = NAL_BUFFER_new();
	again_a = NAL_ADDRESS_new();
	{
		NAL_ADDRESS *t = NAL_ADDRESS_new();
		CHECK(t && NAL_ADDRESS_create(t, "IP:127.0.0.1:7", 100) && again_a &&
			NAL_ADDRESS_create(again_a, "IP:127.0.0.1:7", 777), "parent: an address string created twice");
		NAL_ADDRESS_free(t);
	}
	DC_SERVER_set_default_cache();
	srv = DC_SERVER_new(100);
	CHECK(addr && NAL_ADDRESS_create(addr, a, 4096) && NAL_LISTENER_create(lis, addr) &&
		NAL_LISTENER_add_to_selector(lis, sel), "parent: address, listener on a selector");
	CHECK(NAL_BUFFER_set_size(buf, 64) && NAL_BUFFER_write(buf, U("hello"), 5) == 5 &&
		NAL_BUFFER_used(buf) == 5 && NAL_BUFFER_set_size(fresh_b, 16) && NAL_BUFFER_write(fresh_b, U("xy"), 2) == 2,
		"parent: buffer; another only sized and written");
	CHECK(NAL_CONNECTION_create_pair(p1, p2, 4096) && NAL_CONNECTION_add_to_selector(p1, sel) &&
		NAL_CONNECTION_add_to_selector(p2, sel), "parent: pair");
	NAL_BUFFER_write(NAL_CONNECTION_get_send(p1), U("abcd"), 4);
	CHECK(NAL_CONNECTION_create_pair(q1c, q2c, 4096) && (q1 = DC_PLUG_new(q1c, DC_PLUG_FLAG_TO_SERVER)) &&
		(q2 = DC_PLUG_new(q2c, 0)) && DC_PLUG_to_select(q1, sel) && DC_PLUG_to_select(q2, sel) &&
		DC_PLUG_write(q1, 0, 42, DC_CMD_HAVE, U("sid"), 3) && DC_PLUG_commit(q1), "parent: plugs, a message sent");
	NAL_encode_uint32(&w, &room, 600000);
	NAL_encode_uint32(&w, &room, 12);
	NAL_encode_bin(&w, &room, U("fork-session"), 12);
	NAL_encode_bin(&w, &room, U("session-bytes"), 11);
	CHECK(srv && NAL_CONNECTION_create_pair(s1c, s2c, 4096) && NAL_CONNECTION_add_to_selector(s2c, sel) &&
		DC_SERVER_new_client(srv, s2c, DC_CLIENT_FLAG_IN_SERVER) && (s1 = DC_PLUG_new(s1c, DC_PLUG_FLAG_TO_SERVER)) &&
		DC_PLUG_to_select(s1, sel) && DC_PLUG_write(s1, 0, 8, DC_CMD_ADD, req, (unsigned int)(w - req)) &&
		DC_PLUG_commit(s1), "parent: DC_SERVER with a client, an ADD sent");
	CHECK(until(p2_has_more) == 0 && NAL_BUFFER_used(NAL_CONNECTION_get_read(p2)) == 4 && until(q2_full) &&
		until(s1_full), "parent: bytes, message and ADD response delivered");
	{
		unsigned long u; DC_CMD c; const unsigned char *d; unsigned int n;
		CHECK(DC_PLUG_read(s1, 1, &u, &c, &d, &n) && n == 1 && d[0] == 0 && DC_PLUG_consume(s1),
			"parent: session stored");
	}

	CHECK(in_child(child_address, 30), "child: NAL_ADDRESS restored");
	CHECK(in_child(child_buffer, 30), "child: NAL_BUFFER restored with its contents (C data pointer)");
	CHECK(in_child(child_pair, 30), "child: connection pair restored with buffered bytes, still carries data");
	CHECK(in_child(child_listener, 30), "child: listener on its selector accepts a new connection");
	CHECK(in_child(child_plug, 30), "child: DC_PLUG holding an unread message restored; reply crosses");
	CHECK(in_child(child_server, 30), "child: DC_SERVER with its cache and client restored; GET answered");
	setenv("DISTCACHE_NO_FORK_RESTORE", "1", 1);
	CHECK(in_child(child_stale, 30), "child without restore: every object fails at once (0/-1), no hang");
	CHECK(in_child(child_fresh, 30), "child without restore: handles made but never used in the parent work");
	unsetenv("DISTCACHE_NO_FORK_RESTORE");
	CHECK(child_address() == 0 && child_buffer() == 0 && child_plug() == 0 && child_server() == 0,
		"parent: its objects still work after the children");
	daemon_pattern(dir);

	DC_PLUG_free(q1);
	DC_PLUG_free(q2);
	DC_PLUG_free(s1);
	DC_SERVER_free(srv);
	NAL_CONNECTION_free(p1);
	NAL_CONNECTION_free(p2);
	NAL_LISTENER_free(lis);
	NAL_SELECTOR_free(sel);
	NAL_ADDRESS_free(addr);
	NAL_BUFFER_free(buf);
	NAL_ADDRESS_free(fresh_a);
	NAL_ADDRESS_free(again_a);
	NAL_CONNECTION_free(fresh_c);
	NAL_BUFFER_free(fresh_b);
	return ct_exit();
}
