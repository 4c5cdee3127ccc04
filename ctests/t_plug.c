/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DC_PLUG through the C ABI (t_plug SCRATCHDIR): a client plug and a server
 * plug over NAL_CONNECTION_create_pair and over a unix socket: multi-frame
 * messages, write_more, rollback, resume, consume, payload pointers in C
 * memory, bad commands.
 */
#include <string.h>
#include <distcache/dc_plug.h>
#include "ct.h"

static int pump(NAL_SELECTOR *sel, DC_PLUG *a, DC_PLUG *b, DC_PLUG *want)
{
	unsigned long uid;
	DC_CMD cmd;
	const unsigned char *d;
	unsigned int n;
	int i;

	for (i = 0; i < 50; i++) {
		if (DC_PLUG_read(want, 0, &uid, &cmd, &d, &n))
			return 1;
		NAL_SELECTOR_select(sel, 100000, 1);
		if (!DC_PLUG_io(a) || !DC_PLUG_io(b))
			return 0;
	}
	return 0;
}

static void exchange(const char *how, NAL_CONNECTION *c1, NAL_CONNECTION *c2)
{
	NAL_SELECTOR *sel = NAL_SELECTOR_new();
	DC_PLUG *cl = DC_PLUG_new(c1, DC_PLUG_FLAG_TO_SERVER), *sv = DC_PLUG_new(c2, 0);
	static unsigned char big[20000];
	unsigned long uid = 0;
	DC_CMD cmd = DC_CMD_ERROR;
	const unsigned char *d = NULL;
	unsigned int n = 0, i;

	for (i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 11);
	CHECK(cl && sv && DC_PLUG_to_select(cl, sel) && DC_PLUG_to_select(sv, sel) && !DC_PLUG_to_select(cl, sel),
		"%s: plugs bound (second bind fails)", how);
	CHECK(!DC_PLUG_read(sv, 0, &uid, &cmd, &d, &n) && !DC_PLUG_consume(sv) && !DC_PLUG_commit(cl) &&
		!DC_PLUG_rollback(cl) && !DC_PLUG_write_more(cl, big, 1), "%s: nothing to read/commit/rollback", how);
	CHECK(DC_PLUG_write(cl, 0, 77, DC_CMD_ADD, big, 10000) && !DC_PLUG_write(cl, 0, 1, DC_CMD_GET, big, 1) &&
		DC_PLUG_write(cl, 1, 78, DC_CMD_ADD, big, 10000) && DC_PLUG_write_more(cl, big + 10000, 10000) &&
		!DC_PLUG_write_more(cl, big, 32768), "%s: write, resume replaces, write_more appends, limit", how);
	CHECK(DC_PLUG_commit(cl), "%s: commit a 20000-byte ADD (10 frames)", how);
	CHECK(pump(sel, cl, sv, sv), "%s: the server plug gets the whole message", how);
	CHECK(DC_PLUG_read(sv, 1, &uid, &cmd, &d, &n) && uid == 78 && cmd == DC_CMD_ADD && n == sizeof big &&
		memcmp(d, big, n) == 0, "%s: uid, cmd and payload (C pointer) intact", how);
	CHECK(!DC_PLUG_read(sv, 0, &uid, &cmd, &d, &n) && DC_PLUG_read(sv, 1, &uid, &cmd, &d, &n) && n == sizeof big,
		"%s: read again needs resume", how);
	CHECK(DC_PLUG_consume(sv) && !DC_PLUG_consume(sv), "%s: consume once", how);
	CHECK(DC_PLUG_write(sv, 0, 78, DC_CMD_ADD, U(""), 0) && DC_PLUG_commit(sv), "%s: empty response", how);
	CHECK(pump(sel, cl, sv, cl) && DC_PLUG_read(cl, 1, &uid, &cmd, &d, &n) && uid == 78 && n == 0 && d != NULL,
		"%s: empty payload gives len 0 and a non-NULL pointer", how);
	DC_PLUG_consume(cl);
	CHECK(DC_PLUG_write(cl, 0, 5, DC_CMD_GET, U("x"), 1) && DC_PLUG_rollback(cl) &&
		!DC_PLUG_commit(cl), "%s: rollback discards the open message", how);
	CHECK(!DC_PLUG_write(cl, 0, 5, (DC_CMD)9, U("x"), 1) || !DC_PLUG_commit(cl),
		"%s: an invalid command is refused", how);
	DC_PLUG_rollback(cl);
	DC_PLUG_from_select(cl);
	CHECK(!DC_PLUG_io(cl), "%s: io after from_select is 0", how);
	CHECK(DC_PLUG_free(cl) == 1 && DC_PLUG_free(sv) == 1, "%s: free (connections freed with the plugs)", how);
	NAL_SELECTOR_free(sel);
}

int main(int argc, char **argv)
{
	NAL_CONNECTION *c1 = NAL_CONNECTION_new(), *c2 = NAL_CONNECTION_new(), *s;
	NAL_ADDRESS *a = NAL_ADDRESS_new();
	NAL_LISTENER *l = NAL_LISTENER_new();
	NAL_SELECTOR *sel = NAL_SELECTOR_new();
	char addr[300];
	int i;

	CT_PLAN(4 + 2 * 14);	/* 14 in each exchange() */
	CHECK(NAL_CONNECTION_create_pair(c1, c2, 4096), "pair");
	exchange("pair", c1, c2);

	snprintf(addr, sizeof addr, "UNIX:%s/plug.sock", argc > 1 ? argv[1] : "/tmp");
	c1 = NAL_CONNECTION_new();
	s = NAL_CONNECTION_new();
	CHECK(NAL_ADDRESS_create(a, addr, 4096) && NAL_LISTENER_create(l, a) && NAL_LISTENER_add_to_selector(l, sel) &&
		NAL_CONNECTION_create(c1, a), "unix listener and client");
	for (i = 0; i < 20 && !NAL_CONNECTION_accept(s, l); i++)
		NAL_SELECTOR_select(sel, 100000, 1);
	CHECK(i < 20, "accepted");
	NAL_LISTENER_del_from_selector(l);
	exchange("unix socket", c1, s);
	{
		NAL_CONNECTION *k = NAL_CONNECTION_new(), *k2 = NAL_CONNECTION_new();
		DC_PLUG *p;
		NAL_CONNECTION_create_pair(k, k2, 4096);
		p = DC_PLUG_new(k, DC_PLUG_FLAG_NOFREE_CONN);
		CHECK(p && DC_PLUG_free(p) && NAL_CONNECTION_is_established(k), "NOFREE_CONN keeps the connection");
		NAL_CONNECTION_free(k);
		NAL_CONNECTION_free(k2);
	}
	NAL_LISTENER_free(l);
	NAL_ADDRESS_free(a);
	NAL_SELECTOR_free(sel);
	return ct_exit();
}
