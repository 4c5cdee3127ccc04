/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DC_SERVER through the C ABI (t_server): cache selection, the default cache
 * and a custom DC_CACHE_cb driven by requests from a client plug over a
 * connection pair, operation counting, client deletion.
 */
#include <string.h>
#include <sys/time.h>
#include <distcache/dc_plug.h>
#include <distcache/dc_server.h>
#include "ct.h"

/* A one-slot custom cache that counts its calls. */
static int calls_new, calls_free, calls_add, calls_get, calls_remove, calls_have, calls_num;
static unsigned char slot_id[64], slot_data[40000];
static unsigned int slot_idl, slot_dl;
static unsigned long last_timeout;
static int cache_obj;

static DC_CACHE *c_new(unsigned int max) { calls_new++; return max == 7 ? (DC_CACHE *)&cache_obj : NULL; }
static void c_free(DC_CACHE *c) { (void)c; calls_free++; }
static int c_add(DC_CACHE *c, const struct timeval *now, unsigned long ms, const unsigned char *id,
		unsigned int idl, const unsigned char *d, unsigned int dl)
{
	(void)c; (void)now;
	calls_add++;
	if (slot_idl)
		return 0;
	memcpy(slot_id, id, idl);
	memcpy(slot_data, d, dl);
	slot_idl = idl;
	slot_dl = dl;
	last_timeout = ms;
	return 1;
}
static unsigned int c_get(DC_CACHE *c, const struct timeval *now, const unsigned char *id,
		unsigned int idl, unsigned char *store, unsigned int size)
{
	(void)c; (void)now;
	calls_get++;
	if (!slot_idl || idl != slot_idl || memcmp(id, slot_id, idl))
		return 0;
	if (store)
		memcpy(store, slot_data, slot_dl < size ? slot_dl : size);
	return slot_dl;
}
static int c_remove(DC_CACHE *c, const struct timeval *now, const unsigned char *id, unsigned int idl)
{
	(void)c; (void)now;
	calls_remove++;
	if (!slot_idl || idl != slot_idl || memcmp(id, slot_id, idl))
		return 0;
	slot_idl = 0;
	return 1;
}
static int c_have(DC_CACHE *c, const struct timeval *now, const unsigned char *id, unsigned int idl)
{
	(void)c; (void)now;
	calls_have++;
	return slot_idl && idl == slot_idl && !memcmp(id, slot_id, idl);
}
static unsigned int c_num(DC_CACHE *c, const struct timeval *now) { (void)c; (void)now; calls_num++; return slot_idl ? 1 : 0; }

static NAL_SELECTOR *sel;
static DC_PLUG *cl;
static DC_SERVER *srv;
static struct timeval now;
static unsigned long uid;

/* Send one request and return the response payload (copied) and its length. */
static int request(DC_CMD cmd, const unsigned char *p, unsigned int n, unsigned char *out, unsigned int *outn)
{
	unsigned long ruid;
	DC_CMD rcmd;
	const unsigned char *d;
	unsigned int dl;
	int i;

	if (!DC_PLUG_write(cl, 0, ++uid, cmd, p, n) || !DC_PLUG_commit(cl))
		return 0;
	for (i = 0; i < 100; i++) {
		NAL_SELECTOR_select(sel, 100000, 1);
		if (!DC_PLUG_io(cl))
			return 0;
		gettimeofday(&now, NULL);
		DC_SERVER_clients_io(srv, &now);
		if (DC_PLUG_read(cl, 0, &ruid, &rcmd, &d, &dl)) {
			int ok = ruid == uid && rcmd == cmd;
			memcpy(out, d, dl);
			*outn = dl;
			DC_PLUG_consume(cl);
			return ok;
		}
	}
	return 0;
}

static unsigned int add_payload(unsigned char *b, unsigned long to, const char *id, const unsigned char *d, unsigned int dl)
{
	unsigned char *w = b;
	unsigned int room = 40000;

	NAL_encode_uint32(&w, &room, to);
	NAL_encode_uint32(&w, &room, strlen(id));
	NAL_encode_bin(&w, &room, U(id), (unsigned int)strlen(id));
	NAL_encode_bin(&w, &room, d, dl);
	return (unsigned int)(w - b);
}

static void session(const char *what)
{
	static unsigned char data[20000], req[40000], out[40000];
	unsigned int n, i, outn = 0;

	for (i = 0; i < sizeof data; i++)
		data[i] = (unsigned char)(i * 3);
	n = add_payload(req, 60000, "sess-1", data, sizeof data);
	CHECK(request(DC_CMD_ADD, req, n, out, &outn) && outn == 1 && out[0] == 0x00, "%s: ADD -> 00", what);
	CHECK(request(DC_CMD_ADD, req, n, out, &outn) && outn == 1 && out[0] == 0x65, "%s: duplicate ADD -> 65", what);
	n = add_payload(req, 604800001, "sess-2", data, 10);
	CHECK(request(DC_CMD_ADD, req, n, out, &outn) && outn == 1 && out[0] == 0x66, "%s: timeout > 7 days -> 66", what);
	CHECK(request(DC_CMD_GET, U("sess-1"), 6, out, &outn) && outn == sizeof data && memcmp(out, data, outn) == 0,
		"%s: GET returns the 20000 bytes", what);
	CHECK(request(DC_CMD_HAVE, U("sess-1"), 6, out, &outn) && outn == 1 && out[0] == 0, "%s: HAVE -> 00", what);
	CHECK(DC_SERVER_items_stored(srv, &now) == 1, "%s: items_stored 1", what);
	CHECK(request(DC_CMD_REMOVE, U("sess-1"), 6, out, &outn) && out[0] == 0, "%s: REMOVE -> 00", what);
	CHECK(request(DC_CMD_REMOVE, U("sess-1"), 6, out, &outn) && out[0] == 1, "%s: REMOVE again -> 01", what);
	CHECK(request(DC_CMD_GET, U("sess-1"), 6, out, &outn) && outn == 1 && out[0] == 1, "%s: GET miss -> 01", what);
	CHECK(request(DC_CMD_HAVE, U("sess-1"), 6, out, &outn) && out[0] == 1, "%s: HAVE -> 01", what);
	CHECK(DC_SERVER_num_operations(srv) == 9, "%s: 9 operations counted (%lu)", what, DC_SERVER_num_operations(srv));
	DC_SERVER_reset_operations(srv);
	CHECK(DC_SERVER_num_operations(srv) == 0, "%s: reset_operations", what);
}

static void serve(const char *what, unsigned int max)
{
	NAL_CONNECTION *a = NAL_CONNECTION_new(), *b = NAL_CONNECTION_new();
	int i;

	sel = NAL_SELECTOR_new();
	srv = DC_SERVER_new(max);
	CHECK(srv != NULL, "%s: DC_SERVER_new(%u)", what, max);
	CHECK(NAL_CONNECTION_create_pair(a, b, 4096) && NAL_CONNECTION_add_to_selector(b, sel) &&
		DC_SERVER_new_client(srv, b, DC_CLIENT_FLAG_IN_SERVER) != NULL && !DC_SERVER_clients_empty(srv),
		"%s: client over a pair", what);
	cl = DC_PLUG_new(a, DC_PLUG_FLAG_TO_SERVER);
	DC_PLUG_to_select(cl, sel);
	session(what);
	DC_PLUG_free(cl);
	for (i = 0; i < 50 && !DC_SERVER_clients_empty(srv); i++) {
		NAL_SELECTOR_select(sel, 100000, 1);
		DC_SERVER_clients_io(srv, &now);
	}
	CHECK(DC_SERVER_clients_empty(srv), "%s: a disconnected client is deleted by clients_io", what);
	{
		NAL_CONNECTION *k = NAL_CONNECTION_new(), *k2 = NAL_CONNECTION_new();
		DC_CLIENT *c = NULL;
		NAL_CONNECTION_create_pair(k, k2, 4096);
		c = DC_SERVER_new_client(srv, k, DC_CLIENT_FLAG_NOFREE_CONN);
		CHECK(c && DC_SERVER_process_client(c, &now) == 1 && DC_SERVER_del_client(c) == 1 &&
			NAL_CONNECTION_is_established(k), "%s: del_client with NOFREE_CONN keeps the connection", what);
		NAL_CONNECTION_free(k);
		NAL_CONNECTION_free(k2);
	}
	{
		/* A client without IN_SERVER: this program runs the connection's I/O
		 * and calls DC_SERVER_process_client (never worked in 1.5, E-34). */
		NAL_CONNECTION *x = NAL_CONNECTION_new(), *y = NAL_CONNECTION_new();
		DC_CLIENT *c = NULL;
		DC_PLUG *p = NULL;
		unsigned long ruid = 0;
		DC_CMD rcmd = DC_CMD_ERROR;
		const unsigned char *d = NULL;
		unsigned int dl = 0;
		int got = 0;

		CHECK(NAL_CONNECTION_create_pair(x, y, 4096) && NAL_CONNECTION_add_to_selector(y, sel) &&
			(c = DC_SERVER_new_client(srv, y, 0)) != NULL && (p = DC_PLUG_new(x, DC_PLUG_FLAG_TO_SERVER)) != NULL &&
			DC_PLUG_to_select(p, sel) && DC_PLUG_write(p, 0, 77, DC_CMD_HAVE, U("nope"), 4) && DC_PLUG_commit(p),
			"%s: a caller-driven client (no IN_SERVER) and a request", what);
		for (i = 0; i < 100 && !got; i++) {
			NAL_SELECTOR_select(sel, 100000, 1);
			DC_PLUG_io(p);
			NAL_CONNECTION_io(y);
			DC_SERVER_process_client(c, &now);
			got = DC_PLUG_read(p, 0, &ruid, &rcmd, &d, &dl);
		}
		CHECK(got && ruid == 77 && rcmd == DC_CMD_HAVE && dl == 1 && d[0] == 1,
			"%s: it is answered through process_client (E-34)", what);
		CHECK(DC_SERVER_del_client(c) == 1, "%s: caller deletes it", what);
		DC_PLUG_free(p);
	}
	DC_SERVER_free(srv);
	NAL_SELECTOR_free(sel);
}

int main(void)
{
	static const DC_CACHE_cb custom = { c_new, c_free, c_add, c_get, c_remove, c_have, c_num };
	DC_CACHE_cb broken = custom;

	CT_PLAN(7 + 2 * (7 + 12));	/* each serve(): 7, and 12 in its session() */
	CHECK(DC_SERVER_new(512) == NULL, "DC_SERVER_new before any cache is chosen is NULL");
	broken.cache_have = NULL;
	CHECK(DC_SERVER_set_cache(NULL) == 0 && DC_SERVER_set_cache(&broken) == 0, "set_cache refuses incomplete tables");
	CHECK(DC_SERVER_set_default_cache() == 1, "set_default_cache");
	CHECK(DC_SERVER_new(63) == NULL && DC_SERVER_new(60001) == NULL, "default cache: 64..60000 sessions");
	serve("default cache", 64);

	CHECK(DC_SERVER_set_cache(&custom) == 1, "set_cache(custom)");
	CHECK(DC_SERVER_new(8) == NULL && calls_new == 1, "cache_new returning NULL makes DC_SERVER_new NULL");
	serve("custom cache", 7);
	CHECK(calls_add == 2 && last_timeout == 60000 && calls_get >= 3 && calls_remove == 2 && calls_have == 3 &&
		calls_num == 1 && calls_free == 1, "custom callbacks called (add %d get %d remove %d have %d num %d free %d)",
		calls_add, calls_get, calls_remove, calls_have, calls_num, calls_free);
	return ct_exit();
}
