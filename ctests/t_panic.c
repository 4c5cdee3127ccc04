/* SPDX-License-Identifier: Apache-2.0 */
/*
 * No panic crosses the C boundary (t_panic SCRATCHDIR, run with the test
 * [TARGET]: a server for DC_CTX; with the test
 * engine that honours DISTCACHE_TEST_PANIC): with the variable set, the
 * engine's exports panic inside Go; each call must return its failure
 * value, say one line on stderr, and leave the process and its objects
 * working once the variable is gone.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <distcache/dc_client.h>
#include <distcache/dc_plug.h>
#include <distcache/dc_server.h>
#include "ct.h"

static char errpath[512];

/* stderr goes to a file from here on; lines() counts the lines with s. */
static void capture(const char *dir)
{
	int fd;

	snprintf(errpath, sizeof errpath, "%s/t_panic.stderr", dir);
	fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		dup2(fd, 2);
		close(fd);
	}
}

static int lines(const char *s)
{
	return ct_lines(errpath, s);
}

int main(int argc, char **argv)
{
	NAL_ADDRESS *a = NAL_ADDRESS_new(), *a2 = NAL_ADDRESS_new(), *a3 = NULL, *a4 = NAL_ADDRESS_new();
	NAL_SELECTOR *sel = NAL_SELECTOR_new();
	NAL_BUFFER *b = NAL_BUFFER_new();
	NAL_CONNECTION *c1 = NAL_CONNECTION_new(), *c2 = NAL_CONNECTION_new();
	DC_PLUG *p;
	const unsigned char *d;
	unsigned long uid;
	unsigned int n;
	DC_CMD cmd;
	const char *target = argc > 2 ? argv[2] : "UNIX:/nonexistent";
	/* cold: PERSISTENT, so that its first operations enter the engine (one
	 * of flags 0 on a unix socket makes its first connection in the front) */
	DC_CTX *ctx = DC_CTX_new(target, 0), *cold =
		DC_CTX_new(target, DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_LATE);
	char id[32];

	CT_PLAN(12);
	snprintf(id, sizeof id, "panic-%d", (int)getpid());
	capture(argc > 1 ? argv[1] : "/tmp");
	CHECK(ctx && DC_CTX_add_session(ctx, U(id), (unsigned int)strlen(id), U("data"), 4, 60000) == 1 &&
		a && a2 && a4 && sel && b && NAL_ADDRESS_create(a, "IP:127.0.0.1:9", 4096) &&
		NAL_BUFFER_set_size(b, 64) && NAL_BUFFER_write(b, U("hello"), 5) == 5 &&
		NAL_CONNECTION_create_pair(c1, c2, 4096) && (p = DC_PLUG_new(c1, DC_PLUG_FLAG_TO_SERVER)) != NULL,
		"objects made with the test engine");

	setenv("DISTCACHE_TEST_PANIC", "NAL_BUFFER_used", 1);
	CHECK(NAL_BUFFER_used(b) == 0 && NAL_BUFFER_size(b) == 64,
		"NAL_BUFFER_used panicking returns 0; NAL_BUFFER_size (not named) still works");
	CHECK(lines("distcache: internal error in NAL_BUFFER_used: injected") == 1,
		"one line on stderr names the export");

	setenv("DISTCACHE_TEST_PANIC", "*", 1);
	/* NAL_*_new makes no engine call (the engine object comes with the
	 * first use), so the new handle's first call is what fails; nor does
	 * the create of an address string the engine created before (a's),
	 * so the first use of that address is what fails */
	CHECK((a3 = NAL_ADDRESS_new()) != NULL && NAL_ADDRESS_can_connect(a3) == 0 &&
		NAL_ADDRESS_create(a2, "IP:127.0.0.1:8", 4096) == 0 &&
		NAL_ADDRESS_create(a4, "IP:127.0.0.1:9", 4096) == 1 && NAL_ADDRESS_can_connect(a4) == 0 &&
		NAL_ADDRESS_can_connect(a) == 0 && NAL_BUFFER_data(b) == NULL &&
		NAL_BUFFER_write(b, U("x"), 1) == 0 && NAL_SELECTOR_select(sel, 0, 1) == -1 &&
		NAL_CONNECTION_io(c1) == 0 && NAL_CONNECTION_get_read(c1) == NULL,
		"NAL_*: every call returns its failure value (NULL, 0, -1 for select), a fresh handle's first call too");
	NAL_BUFFER_reset(b);
	NAL_SELECTOR_reset(sel);
	CHECK(DC_PLUG_write(p, 0, 1, DC_CMD_HAVE, U("id"), 2) == 0 && DC_PLUG_commit(p) == 0 &&
		DC_PLUG_read(p, 0, &uid, &cmd, &d, &n) == 0 && DC_PLUG_io(p) == 0,
		"DC_PLUG_*: every call returns its failure value");
	DC_SERVER_set_default_cache();
	CHECK(DC_SERVER_new(100) == NULL, "DC_SERVER_new returns NULL");
	/* a context with no connection yet: its operations enter the engine
	 * (a warm one's are done by the front's fast path, without Go) */
	CHECK(DC_CTX_has_session(cold, U(id), (unsigned int)strlen(id)) == -1 &&
		DC_CTX_get_session(cold, U(id), (unsigned int)strlen(id), NULL, 0, &n) == 0,
		"DC_CTX_*: has -1, get 0 for a session the server holds");
	CHECK(lines("distcache: internal error in ") >= 1, "the process is alive and said so on stderr (%d lines)",
		lines("distcache: internal error in "));

	unsetenv("DISTCACHE_TEST_PANIC");
	CHECK(NAL_BUFFER_used(b) == 5 && memcmp(NAL_BUFFER_data(b), "hello", 5) == 0 && NAL_ADDRESS_can_connect(a) &&
		NAL_ADDRESS_create(a3, "IP:127.0.0.1:9", 4096) && NAL_ADDRESS_can_connect(a3) &&
		NAL_ADDRESS_can_connect(a4) && NAL_ADDRESS_get_def_buffer_size(a4) == 4096,
		"afterwards the objects work and kept their state (void calls under a panic changed nothing), "
		"the handles made and created during the panics too");
	CHECK(DC_PLUG_write(p, 0, 1, DC_CMD_HAVE, U("id"), 2) && DC_PLUG_commit(p), "the plug works again");
	CHECK(DC_PLUG_free(p) == 1, "and frees");
	CHECK(DC_CTX_has_session(ctx, U(id), (unsigned int)strlen(id)) == 1 &&
		DC_CTX_has_session(cold, U(id), (unsigned int)strlen(id)) == 1 &&
		DC_CTX_remove_session(ctx, U(id), (unsigned int)strlen(id)) == 1, "the DC_CTX works again");
	DC_CTX_free(ctx);
	DC_CTX_free(cold);
	NAL_CONNECTION_free(c2);
	NAL_BUFFER_free(b);
	NAL_SELECTOR_free(sel);
	NAL_ADDRESS_free(a);
	NAL_ADDRESS_free(a2);
	NAL_ADDRESS_free(a3);
	NAL_ADDRESS_free(a4);
	return ct_exit();
}
