/* SPDX-License-Identifier: Apache-2.0 */
/*
 * make demo: the Apache pattern through the installed drop-in libraries.
 * The parent creates a DC_CTX and stores a session; a forked child reads it
 * back with DC_CTX_get_session.  Usage: demo TARGET
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <distcache/dc_client.h>

int main(int argc, char **argv)
{
	const unsigned char id[] = "demo-session-id", sess[] = "a TLS session, DER-encoded in real life";
	unsigned char buf[10240];
	unsigned int used = 0;
	DC_CTX *ctx;
	pid_t pid;
	int st;

	if (argc != 2 || !(ctx = DC_CTX_new(argv[1], 0))) {
		fprintf(stderr, "demo: DC_CTX_new failed\n");
		return 1;
	}
	if (!DC_CTX_add_session(ctx, id, sizeof id - 1, sess, sizeof sess, 300000)) {
		fprintf(stderr, "demo: DC_CTX_add_session failed\n");
		return 1;
	}
	printf("parent %d: stored %u bytes under \"%s\"\n", (int)getpid(), (unsigned)sizeof sess, id);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int ok = DC_CTX_get_session(ctx, id, sizeof id - 1, buf, sizeof buf, &used);
		printf("child %d: DC_CTX_get_session -> %d, %u bytes: \"%s\"\n", (int)getpid(), ok, used,
			ok ? (char *)buf : "");
		fflush(stdout);
		_exit(ok && used == sizeof sess && memcmp(buf, sess, used) == 0 ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	DC_CTX_free(ctx);
	printf("demo: %s\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "the child read the parent's session" : "FAILED");
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
