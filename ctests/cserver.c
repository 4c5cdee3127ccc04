/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal distcache server written against our C ABI (NAL_* and DC_PLUG_*
 * only): the suite's server when build/bin/dc_server is not available, and
 * itself a test of the listener/selector/plug paths.  Usage: cserver ADDR.
 * In-memory table, no expiry (tests use long timeouts).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <distcache/dc_plug.h>

#define MAXC 1024
#define MAXS 65536

struct sess { unsigned char *id, *data; unsigned int id_len, data_len; };
static struct sess tab[MAXS];
static unsigned int ntab;

static struct sess *find(const unsigned char *id, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < ntab; i++)
		if (tab[i].id_len == n && memcmp(tab[i].id, id, n) == 0)
			return &tab[i];
	return NULL;
}

static void answer(DC_PLUG *p, unsigned long uid, DC_CMD cmd, const unsigned char *d, unsigned int n)
{
	static unsigned char out[32768];
	unsigned int olen = 1;
	struct sess *s;

	out[0] = 0x01;
	switch (cmd) {
	case DC_CMD_ADD: {
		unsigned long to, idl;
		const unsigned char *q = d;
		unsigned int left = n;
		if (!NAL_decode_uint32(&q, &left, &to) || !NAL_decode_uint32(&q, &left, &idl) ||
		    idl < 1 || idl > DC_MAX_ID_LEN || idl >= left) {
			out[0] = 0x67;
			break;
		}
		if (find(q, (unsigned int)idl) || ntab == MAXS) {
			out[0] = 0x65;
			break;
		}
		s = &tab[ntab++];
		s->id_len = (unsigned int)idl;
		s->data_len = left - (unsigned int)idl;
		s->id = malloc(s->id_len);
		s->data = malloc(s->data_len);
		memcpy(s->id, q, s->id_len);
		memcpy(s->data, q + idl, s->data_len);
		out[0] = 0x00;
		break;
	}
	case DC_CMD_GET:
		if ((s = find(d, n)) != NULL) {
			memcpy(out, s->data, s->data_len);
			olen = s->data_len;
		}
		break;
	case DC_CMD_REMOVE:
		if ((s = find(d, n)) != NULL) {
			free(s->id);
			free(s->data);
			*s = tab[--ntab];
			out[0] = 0x00;
		}
		break;
	case DC_CMD_HAVE:
		if (find(d, n))
			out[0] = 0x00;
		break;
	default:
		break;
	}
	if (DC_PLUG_write(p, 0, uid, cmd, out, olen))
		DC_PLUG_commit(p);
}

int main(int argc, char **argv)
{
	NAL_ADDRESS *a = NAL_ADDRESS_new();
	NAL_LISTENER *l = NAL_LISTENER_new();
	NAL_SELECTOR *sel = NAL_SELECTOR_new();
	DC_PLUG *cl[MAXC];
	NAL_CONNECTION *pending = NULL;
	int n = 0, i;

	signal(SIGPIPE, SIG_IGN);
	if (argc != 2 || !NAL_ADDRESS_create(a, argv[1], 4096) || !NAL_LISTENER_create(l, a) ||
	    !NAL_LISTENER_add_to_selector(l, sel)) {
		fprintf(stderr, "cserver: cannot listen on %s\n", argc > 1 ? argv[1] : "?");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		if (NAL_SELECTOR_select(sel, 0, 0) < 0)
			continue;
		if (!pending)
			pending = NAL_CONNECTION_new();
		while (n < MAXC && NAL_CONNECTION_accept(pending, l)) {
			cl[n] = DC_PLUG_new(pending, 0);
			DC_PLUG_to_select(cl[n++], sel);
			pending = NAL_CONNECTION_new();
		}
		for (i = 0; i < n; i++) {
			unsigned long uid;
			DC_CMD cmd;
			const unsigned char *d;
			unsigned int len;
			int alive = DC_PLUG_io(cl[i]);

			while (alive && DC_PLUG_read(cl[i], 0, &uid, &cmd, &d, &len)) {
				answer(cl[i], uid, cmd, d, len);
				alive = DC_PLUG_consume(cl[i]);
			}
			if (!alive) {
				DC_PLUG_free(cl[i]);
				cl[i--] = cl[--n];
			}
		}
	}
}
