/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SIGPIPE across the engine's load (t_sigpipe): the Go runtime the engine
 * starts installs a handler for SIGPIPE; a program that ignored the signal
 * before its first library call (Apache) finds it ignored after, so a
 * write to a peer that went away costs no signal delivery; a program that
 * did not ignore it keeps the default (a broken-pipe write still ends it).
 * Each case in a process of its own, the one of a forked child of a parent
 * with the engine loaded too (the child maps a second runtime).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <libnal/nal.h>
#include <distcache/dc_client.h>
#include "ct.h"

static int find_engine(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	if (info->dlpi_name && strstr(info->dlpi_name, "libdistcache-engine")) {
		*(int *)data = 1;
		return 1;
	}
	return 0;
}

/* A library call that loads the engine (a connection object is made in
 * it); 1 when the engine is mapped afterwards. */
static int load_engine(void)
{
	NAL_CONNECTION *c = NAL_CONNECTION_new();
	int mapped = 0;

	if (c)
		NAL_CONNECTION_free(c);
	dl_iterate_phdr(find_engine, &mapped);
	return c && mapped;
}

static int sigpipe_ignored(void)
{
	struct sigaction sa;

	return sigaction(SIGPIPE, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
		sa.sa_handler == SIG_IGN;
}

/* write() to a socket whose peer is closed: -1/EPIPE when SIGPIPE is
 * ignored, else the signal's default ends the process. */
static int broken_write(void)
{
	int sv[2];
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 0;
	close(sv[1]);
	n = write(sv[0], "x", 1);
	close(sv[0]);
	return n < 0 && errno == EPIPE;
}

int main(void)
{
	pid_t pid;
	int st = 0, loaded;

	CT_PLAN(7);

	/* 1: a program that leaves SIGPIPE alone keeps its default: a child
	 * that loads the engine and writes to a closed peer dies of it */
	if ((pid = fork()) == 0) {
		signal(SIGPIPE, SIG_DFL);
		if (!load_engine())
			_exit(3);
		broken_write();
		_exit(4);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGPIPE,
	      "SIGPIPE not ignored before the load: a broken-pipe write still ends the process (status %#x)", st);

	/* 2: ignored before the first call, ignored after it */
	signal(SIGPIPE, SIG_IGN);
	loaded = load_engine();
	CHECK(loaded, "NAL_CONNECTION_new loaded the engine");
	CHECK(sigpipe_ignored(), "SIGPIPE ignored before the engine's load is ignored after it (no handler of Go's)");
	CHECK(broken_write(), "a write to a closed peer fails with EPIPE and the process goes on");

	/* 3: a child forked with the engine loaded maps its own copy: the
	 * signal stays ignored there too */
	if ((pid = fork()) == 0) {
		if (!load_engine())
			_exit(3);
		_exit(sigpipe_ignored() && broken_write() ? 0 : 5);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "in a forked child that loads its own engine, SIGPIPE stays ignored (status %#x)", st);

	/* 4: the engine's own lines on stderr (here: a cache that does not
	 * answer within the bound puts the context on probation, and says so)
	 * go to a pipe whose reader is gone (Apache's piped error log after
	 * its logger died): the write fails with EPIPE and the process goes
	 * on (written through Go's os.Stderr, it ended the process with
	 * SIGPIPE although the program ignores the signal) */
	if ((pid = fork()) == 0) {
		struct sockaddr_un sun;
		int ls = socket(AF_UNIX, SOCK_STREAM, 0), p[2];
		char target[sizeof sun.sun_path + 8];
		DC_CTX *ctx;
		unsigned char id[] = "t_sigpipe";

		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof sun.sun_path, "/tmp/t_sigpipe.%d", (int)getpid());
		unlink(sun.sun_path);
		if (ls < 0 || bind(ls, (struct sockaddr *)&sun, sizeof sun) != 0 || listen(ls, 8) != 0)
			_exit(3);
		snprintf(target, sizeof target, "UNIX:%s", sun.sun_path);
		if (!(ctx = DC_CTX_new(target, 0)) || pipe(p) != 0)
			_exit(4);
		close(p[0]);
		dup2(p[1], 2);
		/* connected (the backlog), never answered: fails after the bound */
		DC_CTX_has_session(ctx, id, sizeof id - 1);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	{
		char path[64];

		snprintf(path, sizeof path, "/tmp/t_sigpipe.%d", (int)pid);
		unlink(path);
	}
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "a line of the engine's to a stderr whose reader is gone does not end a program that ignores SIGPIPE (status %#x)", st);

	/* 5: the engine works with it ignored */
	{
		NAL_ADDRESS *a = NAL_ADDRESS_new();
		int ok = a && NAL_ADDRESS_create(a, "UNIX:/tmp/t_sigpipe.none", 1024);

		CHECK(ok, "the engine answers calls after the load");
		if (a)
			NAL_ADDRESS_free(a);
	}
	return ct_exit();
}
