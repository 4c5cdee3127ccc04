/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The library after chroot() (run as root by run.sh; JAIL holds dc.sock,
 * a dc_server's socket, and nothing else, so the engine file is not visible
 * inside it):
 *
 *   t_chroot before JAIL        chroot before the first call: the engine is
 *                               found through the directory the loader kept
 *                               open at load time
 *   t_chroot child JAIL works   the parent uses the library, a child chroots
 *                               (JAIL has /proc mounted) and its fresh engine
 *                               works
 *   t_chroot child JAIL remedy  the same without /proc in JAIL: calls fail,
 *                               with one line on stderr naming the remedy
 *
 * The contexts inside the jail are PERSISTENT ones, whose operations enter
 * the engine: a context of flags 0 on a unix socket makes its connection in
 * the front and needs no engine while its operations succeed (t_fast).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <distcache/dc_client.h>
#include "ct.h"

static int jail(const char *dir)
{
	return chroot(dir) == 0 && chdir("/") == 0;
}

/* add, get back, remove one session; 0 if all worked */
static int roundtrip(DC_CTX *c, const char *tag)
{
	unsigned char buf[64];
	unsigned int used = 0;
	char id[64];

	snprintf(id, sizeof id, "chroot-%s-%d", tag, (int)getpid());
	if (!c || !DC_CTX_add_session(c, U(id), (unsigned int)strlen(id), U("jailed data"), 11, 60000))
		return 1;
	if (!DC_CTX_get_session(c, U(id), (unsigned int)strlen(id), buf, sizeof buf, &used) ||
	    used != 11 || memcmp(buf, "jailed data", 11) != 0)
		return 2;
	return DC_CTX_remove_session(c, U(id), (unsigned int)strlen(id)) == 1 ? 0 : 3;
}

int main(int argc, char **argv)
{
	char target[600], errf[600];

	if (argc < 3 || (strcmp(argv[1], "child") == 0 && argc < 4)) {
		fprintf(stderr, "usage: t_chroot before JAIL | child JAIL works|remedy\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	if (strcmp(argv[1], "before") == 0) {
		DC_CTX *c;

		CT_PLAN(3);
		CHECK(jail(argv[2]), "chroot(%s) before any library call", argv[2]);
		CHECK(access("/distcache", F_OK) != 0 && access("/usr", F_OK) != 0,
			"inside: no engine, no libraries visible");
		c = DC_CTX_new("UNIX:/dc.sock", DC_CTX_FLAG_PERSISTENT);
		CHECK(roundtrip(c, "before") == 0, "DC_CTX add/get/remove in the chroot (the engine loaded after it)");
		DC_CTX_free(c);
	} else {
		int remedy = strcmp(argv[3], "remedy") == 0, st;
		DC_CTX *c;
		pid_t pid;

		CT_PLAN(3);
		snprintf(target, sizeof target, "UNIX:%s/dc.sock", argv[2]);
		snprintf(errf, sizeof errf, "%s.stderr", argv[2]);
		c = DC_CTX_new(target, DC_CTX_FLAG_PERSISTENT);
		CHECK(roundtrip(c, "parent") == 0, "parent: the library is used (engine loaded) before fork()");
		pid = fork();
		if (pid == 0) {
			int fd = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			DC_CTX *in;
			int r;

			if (fd < 0 || dup2(fd, 2) < 0 || !jail(argv[2]))
				_exit(10);
			in = DC_CTX_new("UNIX:/dc.sock", DC_CTX_FLAG_PERSISTENT);
			r = roundtrip(in, "child");
			DC_CTX_free(in);
			/* works: 0; remedy: the calls must fail */
			_exit(remedy ? (r != 0 ? 0 : 11) : r);
		}
		CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
			remedy ? "child in a chroot without /proc: operations fail cleanly, no crash"
			       : "child in a chroot with /proc: its own engine works there");
		if (remedy)
			CHECK(ct_lines(errf, "mount /proc inside the chroot") == 1,
				"and one line on stderr names the remedy");
		else
			CHECK(ct_lines(errf, "distcache:") == 0, "and nothing on stderr");
		DC_CTX_free(c);
	}
	return ct_exit();
}
