/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Everything that must work without the Go engine: DC_CTX_new/free (Apache's
 * parent calls only these), argument checks that fail before any I/O, and the
 * NAL codec.  Ends by checking that no engine was mapped and no thread was
 * started.  Also the program the suite runs under valgrind.
 */
#include <stdint.h>
#include <string.h>
#include <distcache/dc_client.h>
#include <distcache/dc_plug.h>
#include <distcache/dc_server.h>
#include "ct.h"

static int engine_mapped(void)
{
	char line[512];
	int found = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strstr(line, "distcache-engine"))
			found = 1;
	fclose(f);
	return found;
}

static int threads(void)
{
	char line[256];
	int n = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

int main(void)
{
	unsigned char b[16], *w;
	const unsigned char *r;
	unsigned int len, u16;
	unsigned long u32;
	unsigned char ch;
	unsigned int used = 7;
	int i;

	CT_PLAN(16);
	for (i = 0; i < 100; i++) {
		DC_CTX *c = DC_CTX_new("UNIX:/tmp/dc-noengine.sock", 0);
		DC_CTX *d = DC_CTX_new("IP:127.0.0.1:5555", DC_CTX_FLAG_PERSISTENT);
		if (i == 0) {
			CHECK(c != NULL, "DC_CTX_new(UNIX:..., 0) without a server");
			CHECK(d != NULL, "DC_CTX_new(IP:127.0.0.1:5555, PERSISTENT) (TCP connect is not checked up front)");
			CHECK(DC_CTX_add_session(c, NULL, 1, U("x"), 1, 1000) == 0 &&
				DC_CTX_add_session(c, U("x"), 0, U("x"), 1, 1000) == 0 &&
				DC_CTX_add_session(c, U("x"), 1, U("x"), 32760, 1000) == 0 &&
				DC_CTX_get_session(c, U("x"), 0, b, 1, &used) == 0 &&
				DC_CTX_has_session(c, NULL, 1) == -1 &&
				DC_CTX_remove_session(NULL, U("x"), 1) == 0 &&
				used == 7, "bad arguments fail before any I/O");
		}
		DC_CTX_free(c);
		DC_CTX_free(d);
	}
	CHECK(DC_CTX_new("IP:9001", 0) == NULL && DC_CTX_new("IP:localhost", 0) == NULL &&
		DC_CTX_new("UNIX:/a/b", DC_CTX_FLAG_PERSISTENT) == NULL, "bad targets are refused");

	/* codec */
	w = b;
	len = sizeof b;
	CHECK(NAL_encode_uint32(&w, &len, 0x1234567890abcdefUL) && NAL_encode_uint16(&w, &len, 0xabcdef) &&
		NAL_encode_char(&w, &len, 'z') && NAL_encode_bin(&w, &len, U("hello"), 5) &&
		len == 4 && w == b + 12, "encode uint32/uint16/char/bin advance the cursor");
	CHECK(memcmp(b, "\x90\xab\xcd\xef\xcd\xef" "zhello", 12) == 0, "big-endian, low bits kept");
	CHECK(!NAL_encode_bin(&w, &len, U("hello"), 5) && len == 4 && w == b + 12 &&
		NAL_encode_bin(&w, &len, NULL, 0), "encode is all-or-nothing; length 0 always works");
	r = b;
	len = 12;
	CHECK(NAL_decode_uint32(&r, &len, &u32) && u32 == 0x90abcdefUL &&
		NAL_decode_uint16(&r, &len, &u16) && u16 == 0xcdef &&
		NAL_decode_char(&r, &len, &ch) && ch == 'z' && len == 5, "decode uint32/uint16/char");
	CHECK(!NAL_decode_bin(&r, &len, b, 6) && len == 5 && NAL_decode_bin(&r, &len, b + 13, 3) &&
		len == 2 && memcmp(b + 13, "hel", 3) == 0, "decode_bin all-or-nothing");
	CHECK(!NAL_decode_uint32(&r, &len, &u32) && len == 2, "decode_uint32 needs 4 bytes");

	/* NULL objects: failure values, no crash (the original crashed). */
	NAL_ADDRESS_free(NULL);
	NAL_CONNECTION_free(NULL);
	NAL_LISTENER_free(NULL);
	NAL_SELECTOR_free(NULL);
	NAL_BUFFER_free(NULL);
	CHECK(DC_PLUG_free(NULL) == 0, "frees of NULL are harmless");

	/* Frees of pointers the library never returned (httpd's mod_socache_dc
	 * hands DC_CTX_free uninitialised pool memory): ignored, never read
	 * or written, and still no engine. */
	{
		size_t gn = 256;
		unsigned char *garbage = malloc(gn), *copy = malloc(gn);
		char *str = strdup("UNIX:/some/configuration/path/of/some/length.sock");
		DC_CTX *real = DC_CTX_new("UNIX:/tmp/dc-noengine.sock", 0), *other;

		for (i = 0; i < (int)gn; i++)
			garbage[i] = (unsigned char)(i * 37 + 11);
		memcpy(copy, garbage, gn);
		DC_CTX_free((DC_CTX *)(void *)garbage);
		DC_CTX_free((DC_CTX *)(void *)(garbage + 40));
		DC_CTX_free((DC_CTX *)(void *)(str + 7));
		DC_CTX_free((DC_CTX *)(void *)(uintptr_t)0x10000);
		CHECK(memcmp(garbage, copy, gn) == 0, "DC_CTX_free of heap garbage, an interior pointer, a string and "
			"an odd address: ignored, nothing written");
		NAL_ADDRESS_free((NAL_ADDRESS *)(void *)garbage);
		NAL_SELECTOR_free((NAL_SELECTOR *)(void *)garbage);
		NAL_LISTENER_free((NAL_LISTENER *)(void *)garbage);
		NAL_CONNECTION_free((NAL_CONNECTION *)(void *)garbage);
		NAL_BUFFER_free((NAL_BUFFER *)(void *)garbage);
		DC_SERVER_free((DC_SERVER *)(void *)garbage);
		NAL_ADDRESS_free((NAL_ADDRESS *)(void *)real);	/* a live object of another kind */
		CHECK(memcmp(garbage, copy, gn) == 0 && DC_PLUG_free((DC_PLUG *)(void *)garbage) == 0 &&
			DC_SERVER_del_client((DC_CLIENT *)(void *)garbage) == 0,
			"every other free (and a free of a live object of another kind) ignores it too");
		DC_CTX_free(real);
		DC_CTX_free(real);	/* twice: the second is ignored */
		other = DC_CTX_new("UNIX:/tmp/dc-noengine.sock", 0);
		CHECK(other != NULL && DC_CTX_add_session(other, NULL, 1, U("x"), 1, 1) == 0,
			"a DC_CTX freed twice: the second free is ignored; the library carries on");
		DC_CTX_free(other);
		free(garbage);
		free(copy);
		free(str);
	}

	CHECK(engine_mapped() == 0, "no engine was loaded");
	CHECK(threads() == 1, "no thread was started (Threads: %d)", threads());
	return ct_exit();
}
