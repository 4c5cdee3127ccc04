/* SPDX-License-Identifier: Apache-2.0 */
/*
 * E-38 through the C ABI (t_garbage): a valid request followed by garbage in
 * the same read must be answered before the server closes the connection,
 * both for a client the caller drives (DC_SERVER_process_client) and for an
 * IN_SERVER client (DC_SERVER_clients_io).
 */
#include <string.h>
#include <sys/time.h>
#include <distcache/dc_plug.h>
#include <distcache/dc_server.h>
#include "ct.h"

/* HAVE "nope", uid 77 (one complete frame), then 14 bytes of a frame with a
 * foreign protocol level: corrupt input. */
static const unsigned char wire[] = {
	0x00, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4d, 0x00, 0x03, 0x01, 0x00, 0x04,
	'n', 'o', 'p', 'e',
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

static void one(const char *what, int in_server)
{
	NAL_CONNECTION *x = NAL_CONNECTION_new(), *y = NAL_CONNECTION_new();
	NAL_SELECTOR *sel = NAL_SELECTOR_new();
	DC_SERVER *srv = DC_SERVER_new(100);
	DC_CLIENT *c = NULL;
	DC_PLUG *p = NULL;
	struct timeval now;
	unsigned long ruid = 0;
	DC_CMD rcmd = DC_CMD_ERROR;
	const unsigned char *d = NULL;
	unsigned int dl = 0;
	int i, got = 0, closed = 0;

	CHECK(srv && NAL_CONNECTION_create_pair(x, y, 4096) && NAL_CONNECTION_add_to_selector(y, sel) &&
		(c = DC_SERVER_new_client(srv, y, in_server ? DC_CLIENT_FLAG_IN_SERVER : 0)) != NULL,
		"%s: server and a client over a pair", what);
	p = DC_PLUG_new(x, DC_PLUG_FLAG_TO_SERVER);
	CHECK(p && DC_PLUG_to_select(p, sel), "%s: a plug reads the answers", what);
	/* request and garbage leave in one write(2), so they arrive in one read */
	CHECK(NAL_BUFFER_write(NAL_CONNECTION_get_send(x), wire, sizeof wire) == sizeof wire,
		"%s: request + garbage queued at once", what);
	for (i = 0; i < 20 && NAL_BUFFER_notempty(NAL_CONNECTION_get_send(x)); i++) {
		NAL_SELECTOR_select(sel, 50000, 1);
		DC_PLUG_io(p);
	}
	CHECK(NAL_BUFFER_empty(NAL_CONNECTION_get_send(x)), "%s: and sent", what);
	for (i = 0; i < 100 && !(got && closed); i++) {
		NAL_SELECTOR_select(sel, 50000, 1);
		gettimeofday(&now, NULL);
		if (in_server) {
			DC_SERVER_clients_io(srv, &now);
			closed = DC_SERVER_clients_empty(srv);
		} else if (!closed) {
			NAL_CONNECTION_io(y);
			if (!DC_SERVER_process_client(c, &now)) {
				closed = 1;
				DC_SERVER_del_client(c);
			}
		}
		if (!got) {
			DC_PLUG_io(p);	/* fails once the server closed; what came is read */
			got = DC_PLUG_read(p, 0, &ruid, &rcmd, &d, &dl);
		}
	}
	CHECK(got && ruid == 77 && rcmd == DC_CMD_HAVE && dl == 1 && d[0] == 0x01,
		"%s: the request before the garbage is answered (E-38)", what);
	CHECK(closed, "%s: then the client is closed", what);
	DC_PLUG_free(p);
	DC_SERVER_free(srv);
	NAL_SELECTOR_free(sel);
}

int main(void)
{
	CT_PLAN(13);
	CHECK(DC_SERVER_set_default_cache(), "DC_SERVER_set_default_cache");
	one("process_client", 0);
	one("clients_io", 1);
	return ct_exit();
}
