/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libnal through the C ABI (t_nal SCRATCHDIR): addresses, buffers (C
 * pointers from data/write_ptr), pairs, a unix listener with a client and a
 * selector loop, fs perms, and the edge cases of the spec.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <libnal/nal.h>
#include "ct.h"

static void addresses(void)
{
	static const struct { const char *s; int ok, conn, listen; } tab[] = {
		{ "IP:9001", 1, 0, 1 }, { "IP::9001", 1, 0, 1 }, { "IPv4:9001", 1, 0, 1 },
		{ "IP:0", 1, 0, 1 }, { "IP:65535", 1, 0, 1 }, { "IP:+80", 1, 0, 1 },
		{ "IP:127.0.0.1:9001", 1, 1, 1 }, { "IPv4:localhost:9001", 1, 1, 1 },
		{ "UNIX:/tmp/x.sock", 1, 1, 1 }, { "FD:3", 1, 1, 1 }, { "FD:3:-1", 1, 1, 1 },
		{ "IP:65536", 0, 0, 0 }, { "IP:-1", 0, 0, 0 }, { "IP:9001x", 0, 0, 0 }, { "IP:", 0, 0, 0 },
		{ "IP:127.0.0.1:", 0, 0, 0 }, { "IP:host.invalid:80", 0, 0, 0 }, { "ip:9001", 0, 0, 0 },
		{ "IP:[::1]:80", 0, 0, 0 }, { "TCP:1", 0, 0, 0 }, { "I", 0, 0, 0 },
	};
	unsigned int i;
	NAL_ADDRESS *a = NAL_ADDRESS_new();

	CHECK(a && NAL_ADDRESS_get_def_buffer_size(a) == 0 && !NAL_ADDRESS_can_connect(a),
		"new address: un-created, def size 0");
	for (i = 0; i < sizeof tab / sizeof tab[0]; i++) {
		int ok = NAL_ADDRESS_create(a, tab[i].s, 2048);
		CHECK(ok == tab[i].ok && NAL_ADDRESS_can_connect(a) == tab[i].conn &&
			NAL_ADDRESS_can_listen(a) == tab[i].listen,
			"NAL_ADDRESS_create(\"%s\") = %d/%d/%d", tab[i].s, tab[i].ok, tab[i].conn, tab[i].listen);
		NAL_ADDRESS_reset(a);
	}
	CHECK(NAL_ADDRESS_create(a, "IP:1.2.3.4:5", 100) && !NAL_ADDRESS_create(a, "IP:1.2.3.4:5", 100),
		"create twice fails until reset");
	CHECK(NAL_ADDRESS_get_def_buffer_size(a) == 100 && NAL_ADDRESS_set_def_buffer_size(a, 32768) &&
		!NAL_ADDRESS_set_def_buffer_size(a, 32769) && NAL_ADDRESS_get_def_buffer_size(a) == 32768,
		"def buffer size get/set, limit 32768");
	NAL_ADDRESS_reset(a);
	CHECK(!NAL_ADDRESS_create(a, "IP:127.0.0.1:1", 32769), "create with def size > 32768 fails");
	NAL_ADDRESS_free(a);
	/* a freed handle may come back from the next new (the front keeps
	 * a few): freeing it again before that is ignored */
	NAL_ADDRESS_free(a);
	a = NAL_ADDRESS_new();
	CHECK(a && NAL_ADDRESS_get_def_buffer_size(a) == 0 && !NAL_ADDRESS_can_listen(a) &&
		NAL_ADDRESS_create(a, "UNIX:/tmp/x", 100) && NAL_ADDRESS_get_def_buffer_size(a) == 100,
		"a second free is ignored; the next new is a fresh address");
	NAL_ADDRESS_free(a);
}

static void buffers(void)
{
	NAL_BUFFER *b = NAL_BUFFER_new(), *d = NAL_BUFFER_new();
	unsigned char out[64];
	unsigned char *w;

	CHECK(b && NAL_BUFFER_size(b) == 0 && NAL_BUFFER_empty(b) && NAL_BUFFER_full(b) && !NAL_BUFFER_data(b),
		"new buffer: size 0, empty and full, no data pointer");
	CHECK(!NAL_BUFFER_set_size(b, 32769) && NAL_BUFFER_set_size(b, 16) && NAL_BUFFER_size(b) == 16,
		"set_size limit 32768");
	CHECK(NAL_BUFFER_write(b, U("abcdefghijklmnopqrstu"), 21) == 16 && NAL_BUFFER_full(b) &&
		NAL_BUFFER_write(b, U("x"), 1) == 0, "write copies what fits");
	CHECK(memcmp(NAL_BUFFER_data(b), "abcdefghijklmnop", 16) == 0, "data() is a C pointer to the contents");
	CHECK(NAL_BUFFER_read(b, out, 4) == 4 && memcmp(out, "abcd", 4) == 0 &&
		memcmp(NAL_BUFFER_data(b), "efgh", 4) == 0 && NAL_BUFFER_used(b) == 12 &&
		NAL_BUFFER_unused(b) == 4, "read shifts the rest to the front");
	CHECK(NAL_BUFFER_read(b, NULL, 2) == 2 && NAL_BUFFER_used(b) == 10, "read into NULL discards");
	w = NAL_BUFFER_write_ptr(b);
	CHECK(w == NAL_BUFFER_data(b) + 10, "write_ptr = data + used");
	memcpy(w, "XYZ", 3);
	NAL_BUFFER_wrote(b, 3);
	CHECK(NAL_BUFFER_used(b) == 13 && memcmp(NAL_BUFFER_data(b) + 10, "XYZ", 3) == 0, "wrote declares bytes");
	NAL_BUFFER_wrote(b, 100);
	CHECK(NAL_BUFFER_used(b) == 13, "wrote beyond capacity is refused (the original asserted)");
	CHECK(NAL_BUFFER_set_size(d, 5) && NAL_BUFFER_transfer(d, b, 0) == 5 && NAL_BUFFER_used(b) == 8 &&
		memcmp(NAL_BUFFER_data(d), "ghijk", 5) == 0, "transfer moves min(unused, used)");
	NAL_BUFFER_reset(d);
	CHECK(NAL_BUFFER_transfer(d, b, 2) == 2 && NAL_BUFFER_used(d) == 2, "transfer with max");
	CHECK(NAL_BUFFER_set_size(b, 16) && NAL_BUFFER_used(b) == 6, "same size keeps data");
	CHECK(NAL_BUFFER_set_size(b, 32) && NAL_BUFFER_used(b) == 0 && NAL_BUFFER_notfull(b) &&
		!NAL_BUFFER_notempty(b), "new size discards data");
	NAL_BUFFER_free(b);
	NAL_BUFFER_free(d);

	/* A fresh buffer's size is set by the front (its storage handed to
	 * the engine at the first other use): the same rules. */
	b = NAL_BUFFER_new();
	CHECK(b && !NAL_BUFFER_set_size(b, 32769) && NAL_BUFFER_set_size(b, 8) && NAL_BUFFER_set_size(b, 8) &&
		NAL_BUFFER_set_size(b, 0) && NAL_BUFFER_set_size(b, 4) && NAL_BUFFER_size(b) == 4 &&
		NAL_BUFFER_empty(b) && NAL_BUFFER_write(b, U("abcdef"), 6) == 4 &&
		memcmp(NAL_BUFFER_data(b), "abcd", 4) == 0, "a fresh buffer sized several times, then used");
	CHECK(NAL_BUFFER_set_size(b, 4) && NAL_BUFFER_used(b) == 4 && NAL_BUFFER_set_size(b, 6) &&
		NAL_BUFFER_used(b) == 0 && NAL_BUFFER_size(b) == 6, "then sized by the engine");
	NAL_BUFFER_free(b);
	b = NAL_BUFFER_new();
	d = NAL_BUFFER_new();
	CHECK(b && d && NAL_BUFFER_set_size(b, 2048) && NAL_BUFFER_set_size(d, 0) && NAL_BUFFER_size(d) == 0 &&
		!NAL_BUFFER_data(d), "a sized buffer freed unused; a fresh buffer sized 0");
	NAL_BUFFER_free(b);
	NAL_BUFFER_free(d);

	/* ... and written by the front too, until that first other use */
	b = NAL_BUFFER_new();
	d = NAL_BUFFER_new();
	CHECK(b && d && NAL_BUFFER_write(b, U("abc"), 3) == 0 && NAL_BUFFER_set_size(d, 8) &&
		NAL_BUFFER_write(d, U("abc"), 3) == 3 && NAL_BUFFER_write(d, NULL, 5) == 0 &&
		NAL_BUFFER_write(d, U("d"), 0) == 0 && NAL_BUFFER_write(d, U("defghijk"), 8) == 5 &&
		NAL_BUFFER_write(d, U("z"), 1) == 0 && NAL_BUFFER_set_size(d, 8) && NAL_BUFFER_used(d) == 8 &&
		NAL_BUFFER_full(d) && memcmp(NAL_BUFFER_data(d), "abcdefgh", 8) == 0 && NAL_BUFFER_used(b) == 0,
		"a fresh buffer written: what fits, kept by the same size, handed over with its size");
	NAL_BUFFER_free(b);
	NAL_BUFFER_free(d);
	b = NAL_BUFFER_new();
	d = NAL_BUFFER_new();
	CHECK(b && d && NAL_BUFFER_set_size(b, 8) && NAL_BUFFER_write(b, U("abc"), 3) == 3 &&
		NAL_BUFFER_set_size(b, 4) && NAL_BUFFER_write(b, U("wxyz12"), 6) == 4 && NAL_BUFFER_used(b) == 4 &&
		NAL_BUFFER_size(b) == 4 && memcmp(NAL_BUFFER_data(b), "wxyz", 4) == 0 &&
		NAL_BUFFER_set_size(d, 64) && NAL_BUFFER_write(d, U("0123456789"), 10) == 10 &&
		NAL_BUFFER_set_size(d, 0) && NAL_BUFFER_write(d, U("x"), 1) == 0 && NAL_BUFFER_size(d) == 0 &&
		NAL_BUFFER_empty(d), "a fresh buffer written, then sized anew: empty");
	NAL_BUFFER_free(b);
	NAL_BUFFER_free(d);
	b = NAL_BUFFER_new();
	d = NAL_BUFFER_new();
	CHECK(b && d && NAL_BUFFER_set_size(b, 64) && NAL_BUFFER_write(b, U("0123456789"), 10) == 10 &&
		NAL_BUFFER_set_size(d, 16) && NAL_BUFFER_write(d, U("abcdef"), 6) == 6 &&
		NAL_BUFFER_transfer(d, b, 0) == 10 && NAL_BUFFER_used(d) == 16 && NAL_BUFFER_used(b) == 0 &&
		memcmp(NAL_BUFFER_data(d), "abcdef0123456789", 16) == 0,
		"two fresh buffers written, then a transfer between them");
	NAL_BUFFER_free(b);
	NAL_BUFFER_free(d);
	b = NAL_BUFFER_new();
	if (b && NAL_BUFFER_set_size(b, 64))
		NAL_BUFFER_write(b, U("0123456789"), 10);
	NAL_BUFFER_free(b);	/* written, freed unused: nothing leaks (ASan) */
}

/* Create s on a fresh handle with size; the handle (NULL if either failed). */
static NAL_ADDRESS *made(const char *s, unsigned int size)
{
	NAL_ADDRESS *a = NAL_ADDRESS_new();

	if (a && !NAL_ADDRESS_create(a, s, size)) {
		NAL_ADDRESS_free(a);
		a = NULL;
	}
	return a;
}

/*
 * An address string the engine created before, without a host name to look
 * up, is created again by the front alone (the engine object comes with the
 * first use): the address must be the one a first create makes, with the
 * size, the limits and the misuse answers of any create, and work in a
 * listener and a connection, after many other strings took its place too.
 */
static void remembered(const char *dir)
{
	static const char *const fixed[] = { "UNIX:/tmp/x.sock", "IP:9001", "IP:127.0.0.1:9001", "FD:3:4", "IPv6:9002" };
	NAL_ADDRESS *a, *b, *many[100];
	NAL_LISTENER *l = NAL_LISTENER_new();
	NAL_CONNECTION *c = NAL_CONNECTION_new();
	char s[300];
	unsigned int i;
	int ok;

	for (i = 0, ok = 1; i < sizeof fixed / sizeof fixed[0]; i++) {
		a = made(fixed[i], 100);
		b = made(fixed[i], 200);
		ok = ok && a && b && NAL_ADDRESS_can_connect(b) == NAL_ADDRESS_can_connect(a) &&
			NAL_ADDRESS_can_listen(b) == NAL_ADDRESS_can_listen(a) &&
			NAL_ADDRESS_get_def_buffer_size(a) == 100 && NAL_ADDRESS_get_def_buffer_size(b) == 200;
		NAL_ADDRESS_free(a);
		NAL_ADDRESS_free(b);
	}
	CHECK(ok, "a string created again: the same address, with its own default size");
	a = NAL_ADDRESS_new();
	b = NAL_ADDRESS_new();
	CHECK(a && b && !NAL_ADDRESS_create(a, "UNIX:/tmp/x.sock", 32769) && NAL_ADDRESS_get_def_buffer_size(a) == 0 &&
		!NAL_ADDRESS_can_listen(a) && NAL_ADDRESS_create(b, "UNIX:/tmp/x.sock", 32768) &&
		!NAL_ADDRESS_create(b, "UNIX:/tmp/x.sock", 1) && NAL_ADDRESS_get_def_buffer_size(b) == 32768,
		"created again: a size above 32768 fails, a second create fails");
	NAL_ADDRESS_free(a);
	a = b;
	NAL_ADDRESS_reset(a);
	CHECK(!NAL_ADDRESS_can_connect(a) && NAL_ADDRESS_create(a, "IP:9001", 5) && !NAL_ADDRESS_can_connect(a) &&
		NAL_ADDRESS_can_listen(a) && NAL_ADDRESS_get_def_buffer_size(a) == 5, "reset, then created again as another");
	NAL_ADDRESS_free(a);
	/* unused, then freed: nothing to leak (ASan) */
	NAL_ADDRESS_free(made("UNIX:/tmp/x.sock", 7));

	snprintf(s, sizeof s, "UNIX:%s/again.sock", dir);
	NAL_ADDRESS_free(made(s, 512));
	a = made(s, 512);
	for (i = 0; i < sizeof many / sizeof many[0]; i++) {
		snprintf(s, sizeof s, "UNIX:/tmp/remembered-%u", i);
		NAL_ADDRESS_free(made(s, 1));
		many[i] = made(s, i);
	}
	for (i = 0, ok = 1; i < sizeof many / sizeof many[0]; i++) {
		ok = ok && many[i] && NAL_ADDRESS_get_def_buffer_size(many[i]) == i && NAL_ADDRESS_can_connect(many[i]);
		NAL_ADDRESS_free(many[i]);
	}
	CHECK(ok, "100 strings created again, each then used after the others took its place");
	CHECK(a && NAL_LISTENER_create(l, a) && NAL_CONNECTION_create(c, a) &&
		NAL_BUFFER_size(NAL_CONNECTION_get_send(c)) == 512,
		"created again, first used by a listener and a connection");
	NAL_CONNECTION_free(c);
	NAL_LISTENER_free(l);
	NAL_ADDRESS_free(a);
}

static void pair_and_socket(const char *dir)
{
	NAL_CONNECTION *c1 = NAL_CONNECTION_new(), *c2 = NAL_CONNECTION_new(), *srv = NAL_CONNECTION_new();
	NAL_SELECTOR *sel = NAL_SELECTOR_new();
	NAL_LISTENER *l = NAL_LISTENER_new();
	NAL_ADDRESS *a = NAL_ADDRESS_new();
	char addr[300], path[280];
	unsigned char out[32];
	struct stat st;
	int i, got = 0;

	CHECK(!NAL_CONNECTION_get_read(c1) && !NAL_CONNECTION_is_established(c1), "unused connection: no buffers");
	CHECK(NAL_SELECTOR_select(sel, 1000, 1) == -1, "dynamic selector with nothing bound: -1 at once");
	CHECK(!NAL_CONNECTION_create_pair(c1, c2, 32769) && NAL_CONNECTION_create_pair(c1, c2, 1024),
		"create_pair, size limit");
	CHECK(NAL_CONNECTION_is_established(c1) && NAL_BUFFER_size(NAL_CONNECTION_get_send(c1)) == 1024 &&
		NAL_CONNECTION_get_read_c(c2) == NAL_CONNECTION_get_read(c2), "pair: established, sized, stable buffer handles");
	CHECK(!NAL_CONNECTION_io(c1), "io on an unbound connection is 0");
	CHECK(NAL_CONNECTION_add_to_selector(c1, sel) && NAL_CONNECTION_add_to_selector(c2, sel) &&
		!NAL_CONNECTION_add_to_selector(c1, sel) && NAL_SELECTOR_num_objects(sel) == 2,
		"bind both; a second bind fails");
	NAL_BUFFER_write(NAL_CONNECTION_get_send(c1), U("ping"), 4);
	for (i = 0; i < 10 && !got; i++) {
		NAL_SELECTOR_select(sel, 200000, 1);
		NAL_CONNECTION_io(c1);
		NAL_CONNECTION_io(c2);
		got = NAL_BUFFER_used(NAL_CONNECTION_get_read(c2)) == 4;
	}
	CHECK(got && memcmp(NAL_BUFFER_data(NAL_CONNECTION_get_read(c2)), "ping", 4) == 0, "bytes cross the pair");
	NAL_BUFFER_free(NAL_CONNECTION_get_read(c1));
	CHECK(NAL_BUFFER_size(NAL_CONNECTION_get_read(c1)) == 1024,
		"NAL_BUFFER_free of a connection's own buffer is ignored (it goes with the connection)");
	NAL_CONNECTION_free(c1);
	for (i = 0; i < 10; i++) {
		if (NAL_SELECTOR_select(sel, 200000, 1) > 0 && !NAL_CONNECTION_io(c2))
			break;
	}
	CHECK(i < 10, "peer closed: io reports the connection dead");
	CHECK(NAL_SELECTOR_num_objects(sel) == 1, "freeing a connection unbinds it");
	NAL_CONNECTION_reset(c2);
	CHECK(NAL_SELECTOR_num_objects(sel) == 0 && !NAL_CONNECTION_get_read(c2), "reset unbinds and empties");

	snprintf(path, sizeof path, "%s/nal.sock", dir);
	snprintf(addr, sizeof addr, "UNIX:%s", path);
	CHECK(NAL_ADDRESS_create(a, addr, 2048) && NAL_LISTENER_create(l, a) && !NAL_LISTENER_create(l, a) &&
		NAL_LISTENER_add_to_selector(l, sel) && !NAL_LISTENER_finished(l), "unix listener");
	CHECK(NAL_LISTENER_set_fs_perms(l, "0640") && stat(path, &st) == 0 && (st.st_mode & 0777) == 0640,
		"set_fs_perms 0640");
	CHECK(!NAL_LISTENER_set_fs_perms(l, "9") && !NAL_LISTENER_set_fs_owner(l, "no-such-user-x", NULL),
		"bad perms / unknown owner fail");
	CHECK(NAL_CONNECTION_create(c2, a) && NAL_CONNECTION_add_to_selector(c2, sel), "connect to it");
	NAL_BUFFER_write(NAL_CONNECTION_get_send(c2), U("hello"), 5);
	got = 0;
	for (i = 0; i < 20 && got < 5; i++) {
		NAL_SELECTOR_select(sel, 200000, 1);
		if (NAL_CONNECTION_accept(srv, l))
			NAL_CONNECTION_add_to_selector(srv, sel);
		NAL_CONNECTION_io(c2);
		if (NAL_CONNECTION_is_established(srv) && NAL_CONNECTION_io(srv))
			got = (int)NAL_BUFFER_used(NAL_CONNECTION_get_read(srv));
	}
	CHECK(got == 5 && NAL_BUFFER_read(NAL_CONNECTION_get_read(srv), out, sizeof out) == 5 &&
		memcmp(out, "hello", 5) == 0, "accept + io: the server reads the client's bytes");
	CHECK(NAL_BUFFER_size(NAL_CONNECTION_get_read(srv)) == 2048, "accepted buffers have the address's size");
	CHECK(NAL_CONNECTION_set_size(srv, 4096) && !NAL_CONNECTION_set_size(srv, 40000), "set_size");
	CHECK(NAL_CONNECTION_get_send_c(srv) == NAL_CONNECTION_get_send(srv) &&
		NAL_BUFFER_size(NAL_CONNECTION_get_send_c(srv)) == 4096, "get_send_c is the send buffer");
	NAL_CONNECTION_del_from_selector(srv);
	CHECK(!NAL_CONNECTION_io(srv) && NAL_CONNECTION_add_to_selector(srv, sel),
		"del_from_selector: io is 0 until bound again");
	NAL_LISTENER_reset(l);
	CHECK(!NAL_LISTENER_add_to_selector(l, sel) && NAL_LISTENER_create(l, a),
		"listener reset: unused, can be created again");
	errno = 0;
	NAL_SELECTOR_free(sel);
	NAL_CONNECTION_free(srv);
	NAL_CONNECTION_free(c2);
	NAL_LISTENER_free(l);
	NAL_ADDRESS_free(a);
	sel = NAL_SELECTOR_new_fdpoll();
	CHECK(sel && NAL_SELECTOR_select(sel, 1000, 1) == 0, "fdpoll selector with nothing bound times out");
	NAL_SELECTOR_reset(sel);
	NAL_SELECTOR_free(sel);
	sel = NAL_SELECTOR_new_fdselect();
	CHECK(sel != NULL && NAL_SELECTOR_num_objects(sel) == 0, "fdselect selector");
	NAL_SELECTOR_free(sel);
}

int main(int argc, char **argv)
{
	CT_PLAN(47 + 5 + 21);	/* 21: one per row of the address table */
	NAL_config_set_nagle(0);
	addresses();
	remembered(argc > 1 ? argv[1] : "/tmp");
	buffers();
	pair_and_socket(argc > 1 ? argv[1] : "/tmp");
	return ct_exit();
}
