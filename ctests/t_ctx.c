/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DC_CTX against a running server: t_ctx TARGET [label]
 * add/get/reget/has/remove with every flag combination, a buffer too small
 * (full length in result_used), NULL/oversize/empty arguments, and the
 * targets DC_CTX_new must refuse.
 */
#include <string.h>
#include <unistd.h>
#include <distcache/dc_client.h>
#include "ct.h"

static const char *label;

/* The checks ops() makes (all of them, or the plan is short). */
#define OPS_CHECKS 19

static void ops(const char *target, unsigned int flags)
{
	DC_CTX *c = DC_CTX_new(target, flags);
	unsigned char id[40], data[3000], buf[4096], big[40000];
	unsigned int used = 12345, i;

	CHECK(c != NULL, "%s flags %#x: DC_CTX_new", label, flags);
	if (!c)
		return;
	snprintf((char *)id, sizeof id, "id-%s-%u-%d", label, flags, (int)getpid());
	for (i = 0; i < sizeof data; i++)
		data[i] = (unsigned char)(i * 7 + flags);
	CHECK(DC_CTX_has_session(c, id, (unsigned int)strlen((char *)id)) == 0,
		"%s flags %#x: has on a missing id is 0", label, flags);
	CHECK(DC_CTX_get_session(c, id, (unsigned int)strlen((char *)id), buf, sizeof buf, &used) == 0 &&
		used == 12345, "%s flags %#x: get on a missing id fails, used untouched", label, flags);
	CHECK(DC_CTX_add_session(c, id, (unsigned int)strlen((char *)id), data, sizeof data, 60000) == 1,
		"%s flags %#x: add", label, flags);
	CHECK(DC_CTX_add_session(c, id, (unsigned int)strlen((char *)id), data, sizeof data, 60000) == 0,
		"%s flags %#x: second add of the same id refused", label, flags);
	CHECK(DC_CTX_has_session(c, id, (unsigned int)strlen((char *)id)) == 1,
		"%s flags %#x: has is 1", label, flags);
	memset(buf, 0, sizeof buf);
	CHECK(DC_CTX_get_session(c, id, (unsigned int)strlen((char *)id), buf, sizeof buf, &used) == 1 &&
		used == sizeof data && memcmp(buf, data, sizeof data) == 0,
		"%s flags %#x: get returns the data", label, flags);
	memset(buf, 0, sizeof buf);
	used = 0;
	CHECK(DC_CTX_reget_session(c, id, (unsigned int)strlen((char *)id), buf, sizeof buf, &used) == 1 &&
		used == sizeof data && memcmp(buf, data, sizeof data) == 0,
		"%s flags %#x: reget after get returns the data", label, flags);
	CHECK(DC_CTX_reget_session(c, U("other"), 5, buf, sizeof buf, &used) == 0,
		"%s flags %#x: reget of another id fails", label, flags);
	used = 0;
	memset(buf, 0xee, sizeof buf);
	CHECK(DC_CTX_get_session(c, id, (unsigned int)strlen((char *)id), buf, 100, &used) == 1 &&
		used == sizeof data && memcmp(buf, data, 100) == 0 && buf[100] == 0xee,
		"%s flags %#x: buffer too small: 100 bytes copied, result_used = full length", label, flags);
	used = 0;
	CHECK(DC_CTX_get_session(c, id, (unsigned int)strlen((char *)id), NULL, 0, &used) == 1 &&
		used == sizeof data, "%s flags %#x: NULL buffer asks for the length", label, flags);
	CHECK(DC_CTX_remove_session(c, id, (unsigned int)strlen((char *)id)) == 1,
		"%s flags %#x: remove", label, flags);
	CHECK(DC_CTX_remove_session(c, id, (unsigned int)strlen((char *)id)) == 0,
		"%s flags %#x: second remove is 0", label, flags);
	CHECK(DC_CTX_reget_session(c, id, (unsigned int)strlen((char *)id), buf, sizeof buf, &used) == 0,
		"%s flags %#x: reget after a remove fails", label, flags);
	CHECK(DC_CTX_has_session(c, id, (unsigned int)strlen((char *)id)) == 0,
		"%s flags %#x: has after remove is 0", label, flags);

	/* Bad arguments: the original asserted; we fail. */
	memset(big, 'x', sizeof big);
	CHECK(DC_CTX_add_session(c, NULL, 4, data, 10, 60000) == 0 &&
		DC_CTX_add_session(c, id, 0, data, 10, 60000) == 0 &&
		DC_CTX_add_session(c, id, 4, NULL, 10, 60000) == 0 &&
		DC_CTX_add_session(c, id, 4, data, 0, 60000) == 0 &&
		DC_CTX_add_session(NULL, id, 4, data, 10, 60000) == 0,
		"%s flags %#x: add with NULL/empty arguments fails", label, flags);
	CHECK(DC_CTX_add_session(c, big, 32761, data, 1, 60000) == 0 &&
		DC_CTX_add_session(c, id, 4, big, 32757, 60000) == 0,
		"%s flags %#x: add over the 32768-byte message limit fails", label, flags);
	CHECK(DC_CTX_add_session(c, big, 65, data, 10, 60000) == 0,
		"%s flags %#x: add with a 65-byte id is refused by the server", label, flags);
	CHECK(DC_CTX_get_session(c, NULL, 4, buf, 10, &used) == 0 &&
		DC_CTX_get_session(c, id, 0, buf, 10, &used) == 0 &&
		DC_CTX_get_session(c, big, 40000, buf, 10, &used) == 0 &&
		DC_CTX_reget_session(NULL, id, 4, buf, 10, &used) == 0 &&
		DC_CTX_remove_session(c, NULL, 3) == 0 &&
		DC_CTX_remove_session(c, id, 40000) == 0 &&
		DC_CTX_has_session(c, NULL, 3) == -1 &&
		DC_CTX_has_session(NULL, id, 3) == -1 &&
		DC_CTX_has_session(c, id, 0) == -1,
		"%s flags %#x: get/reget/remove/has with bad arguments fail", label, flags);
	DC_CTX_free(c);
}

int main(int argc, char **argv)
{
	static const unsigned int flagsets[] = {
		0, DC_CTX_FLAG_PERSISTENT,
		DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_PIDCHECK,
		DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_RETRY,
		DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_LATE,
		DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_PIDCHECK |
			DC_CTX_FLAG_PERSISTENT_RETRY | DC_CTX_FLAG_PERSISTENT_LATE,
		DC_CTX_FLAG_PERSISTENT_RETRY | DC_CTX_FLAG_PERSISTENT_LATE, 0x100,
	};
	static const char *bad[] = {
		"IP:9001", "IP::9001", "IPv4:9001", "IP:", "IP:127.0.0.1:", "IP:127.0.0.1:65536",
		"IP:127.0.0.1:9x", "IP:host.invalid:80", "ip:127.0.0.1:80", "TCP:1", "I", "",
		"UNIX:", "FD:0", "IPv6:::1:80",
	};
	unsigned int i;

	if (argc < 2) {
		fprintf(stderr, "usage: t_ctx TARGET [label]\n");
		return 2;
	}
	label = argc > 2 ? argv[2] : "server";
	/* OPS_CHECKS per flag set, one per refused target, 7 more below */
	CT_PLAN((int)(sizeof flagsets / sizeof flagsets[0] * OPS_CHECKS + sizeof bad / sizeof bad[0]) + 7);
	for (i = 0; i < sizeof flagsets / sizeof flagsets[0]; i++)
		ops(argv[1], flagsets[i]);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		DC_CTX *c = DC_CTX_new(bad[i], 0);
		CHECK(c == NULL, "DC_CTX_new(\"%s\") is NULL", bad[i]);
		DC_CTX_free(c);
	}
	CHECK(DC_CTX_new(NULL, 0) == NULL, "DC_CTX_new(NULL) is NULL");
	{
		DC_CTX *c = DC_CTX_new("IP:127.0.0.1:1", 0), *d = DC_CTX_new("IPv4:localhost:1", 0);
		CHECK(c && d, "IP:127.0.0.1:1 and IPv4:localhost:1 are accepted (nothing listening is fine without PERSISTENT)");
		CHECK(c && DC_CTX_add_session(c, U("abcd"), 4, U("data"), 4, 60000) == 0 &&
			DC_CTX_has_session(c, U("abcd"), 4) == -1,
			"operations on a closed TCP port fail (0, has -1)");
		DC_CTX_free(c);
		DC_CTX_free(d);
	}
	CHECK(DC_CTX_new("UNIX:/nonexistent/dc.sock", DC_CTX_FLAG_PERSISTENT) == NULL,
		"PERSISTENT to a unix path nobody listens on is NULL");
	{
		DC_CTX *c = DC_CTX_new("UNIX:/nonexistent/dc.sock", DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_LATE);
		CHECK(c != NULL, "PERSISTENT|LATE to the same path is created");
		CHECK(c && DC_CTX_has_session(c, U("abcd"), 4) == -1, "and its operations fail (-1)");
		DC_CTX_free(c);
		c = DC_CTX_new("UNIX:/nonexistent/dc.sock", 0);
		CHECK(c && DC_CTX_remove_session(c, U("abcd"), 4) == 0, "flags 0, no listener: remove fails");
		DC_CTX_free(c);
	}
	DC_CTX_free(NULL);
	return ct_exit();
}
