/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fork matrix for DC_CTX (t_fork TARGET):
 *  - Apache: DC_CTX_new in a parent that never loads the engine, then 8
 *    children doing thousands of verified operations each with GOGC=1;
 *    every child must finish (the parent kills them after a deadline);
 *  - fork after use: the parent used the context (engine loaded); a child,
 *    a grandchild and a fork+exec'd program use it and new contexts;
 *  - a persistent context used before the fork keeps working in the child;
 *  - a NAL object made before the fork is restored in the child (t_forkobj
 *    covers every kind);
 *  - two children of a parent with an engine map one copy of it.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <distcache/dc_client.h>
#include <distcache/dc_plug.h>
#include "ct.h"

static const char *target;

/* Number of socket descriptors open in this process. */
static int sockets(void)
{
	char path[64], link[128];
	int fd, n = 0;

	for (fd = 0; fd < 1024; fd++) {
		ssize_t k;
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		k = readlink(path, link, sizeof link - 1);
		if (k > 0) {
			link[k] = 0;
			if (strncmp(link, "socket:", 7) == 0)
				n++;
		}
	}
	return n;
}

static int engine_mapped(const char *how)
{
	char line[512];
	int found = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strstr(line, how))
			found = 1;
	fclose(f);
	return found;
}

/* The inode of this process's memfd copy of the engine, or 0. */
static unsigned long engine_copy_inode(void)
{
	char line[512];
	unsigned long ino = 0, v;
	FILE *f = fopen("/proc/self/maps", "r");

	while (f && fgets(line, sizeof line, f))
		if (strstr(line, "memfd:distcache-engine") &&
		    sscanf(line, "%*s %*s %*s %*s %lu", &v) == 1 && v != 0)
			ino = v;
	if (f)
		fclose(f);
	return ino;
}

/* n rounds of add + get (+ remove every 4th): returns the number of failures. */
static int work(DC_CTX *c, const char *tag, int n)
{
	unsigned char id[64], data[600], buf[1024];
	unsigned int used, i;
	int k, bad = 0;

	for (k = 0; k < n; k++) {
		snprintf((char *)id, sizeof id, "%s-%d-%d", tag, (int)getpid(), k);
		for (i = 0; i < sizeof data; i++)
			data[i] = (unsigned char)(k + i * 13 + getpid());
		if (DC_CTX_add_session(c, id, (unsigned int)strlen((char *)id), data, sizeof data, 600000) != 1)
			bad++;
		used = 0;
		if (DC_CTX_get_session(c, id, (unsigned int)strlen((char *)id), buf, sizeof buf, &used) != 1 ||
		    used != sizeof data || memcmp(buf, data, sizeof data) != 0)
			bad++;
		if (k % 4 == 0 && DC_CTX_remove_session(c, id, (unsigned int)strlen((char *)id)) != 1)
			bad++;
	}
	return bad;
}

/* Wait for the given children until the deadline; kill the rest. Returns the
 * number that exited 0. */
static int reap(pid_t *kids, int n, int seconds)
{
	time_t end = time(NULL) + seconds;
	int good = 0, left = n, i, st;

	while (left > 0) {
		for (i = 0; i < n; i++) {
			if (kids[i] <= 0)
				continue;
			if (waitpid(kids[i], &st, WNOHANG) == kids[i]) {
				if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
					good++;
				else
					printf("# child %d: status %#x\n", (int)kids[i], st);
				kids[i] = 0;
				left--;
			}
		}
		if (left == 0)
			break;
		if (time(NULL) > end) {
			for (i = 0; i < n; i++)
				if (kids[i] > 0) {
					printf("# child %d hung: killed\n", (int)kids[i]);
					kill(kids[i], SIGKILL);
					waitpid(kids[i], &st, 0);
				}
			break;
		}
		usleep(20000);
	}
	return good;
}

int main(int argc, char **argv)
{
	DC_CTX *c, *p;
	pid_t kids[8];
	int i, n;

	if (argc == 3 && strcmp(argv[2], "exec-child") == 0) {
		/* fork+exec: a fresh process image using a new context. */
		c = DC_CTX_new(argv[1], 0);
		return c && work(c, "exec", 50) == 0 ? 0 : 1;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: t_fork TARGET\n");
		return 2;
	}
	CT_PLAN(12);
	target = argv[1];
	setvbuf(stdout, NULL, _IONBF, 0);
	setenv("GOGC", "1", 1);

	/* 1. Apache */
	c = DC_CTX_new(target, 0);
	CHECK(c != NULL, "parent: DC_CTX_new");
	CHECK(engine_mapped("distcache-engine") == 0, "parent: no engine loaded by DC_CTX_new");
	for (i = 0; i < 8; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			int bad = work(c, "apache", 700);
			/* the first engine of a process comes from the file, not a copy */
			if (engine_mapped("memfd:") == 1)
				bad++;
			_exit(bad ? 1 : 0);
		}
	}
	n = reap(kids, 8, 150);
	CHECK(n == 8, "8 children x 700 rounds (add+get+remove/4, GOGC=1): %d finished clean", n);
	CHECK(engine_mapped("distcache-engine") == 0, "parent: still no engine");

	/* 2. fork after use */
	p = DC_CTX_new(target, DC_CTX_FLAG_PERSISTENT);
	CHECK(work(c, "parent", 20) == 0 && work(p, "parent-p", 20) == 0, "parent: operations (engine now loaded)");
	CHECK(engine_mapped("distcache-engine") == 1, "parent: engine loaded");
	{
		int before = sockets(), st;
		pid_t k = fork();
		/* two kept connections: p's (persistent) and c's (flags 0
		 * keeps its connection between operations too) */
		if (k == 0)
			_exit(sockets() == before - 2 ? 0 : 1);
		waitpid(k, &st, 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			"child: the parent's two kept connections (persistent and flags 0) are closed at fork (%d sockets in the parent)", before);
	}
	{
		/* more pooled connections than the front once had room for (256) */
		enum { MANY = 300 };
		DC_CTX *many[MANY];
		int i, used = 0, before, st;
		pid_t k;

		for (i = 0; i < MANY; i++) {
			many[i] = DC_CTX_new(target, DC_CTX_FLAG_PERSISTENT);
			used += many[i] && DC_CTX_has_session(many[i], U("none"), 4) == 0;
		}
		before = sockets();
		k = fork();
		if (k == 0)
			_exit(sockets() <= before - MANY ? 0 : 1);
		waitpid(k, &st, 0);
		CHECK(used == MANY && WIFEXITED(st) && WEXITSTATUS(st) == 0,
			"child: all %d pooled connections of %d persistent contexts are closed at fork (%d used)",
			MANY, MANY, used);
		for (i = 0; i < MANY; i++)
			DC_CTX_free(many[i]);
	}
	{
		NAL_ADDRESS *a = NAL_ADDRESS_new();
		CHECK(a && NAL_ADDRESS_create(a, "IP:127.0.0.1:9", 4096), "parent: NAL_ADDRESS created");
		for (i = 0; i < 4; i++) {
			kids[i] = fork();
			if (kids[i] == 0) {
				int bad = 0;
				switch (i) {
				case 0:	/* child of a user: old and new contexts */
					bad = work(c, "child", 100) + work(p, "child-p", 100);
					{
						DC_CTX *q = DC_CTX_new(target, DC_CTX_FLAG_PERSISTENT);
						bad += q ? work(q, "child-new", 50) : 1;
						DC_CTX_free(q);
					}
					bad += engine_mapped("memfd:") == 1 ? 0 : 1;
					break;
				case 1:	/* grandchild of a child that used the library */
					bad = work(c, "child2", 10);
					{
						pid_t g = fork();
						if (g == 0)
							_exit(work(c, "grandchild", 100) + work(p, "grandchild-p", 100) ? 1 : 0);
						bad += reap(&g, 1, 60) == 1 ? 0 : 1;
					}
					break;
				case 2:	/* fork + exec */
					execl("/proc/self/exe", "t_fork", target, "exec-child", (char *)NULL);
					_exit(3);
				case 3:	/* an object made before the fork works in the child */
					bad = NAL_ADDRESS_can_connect(a) == 1 ? 0 : 1;
					NAL_ADDRESS_free(a);
					break;
				}
				_exit(bad ? 1 : 0);
			}
		}
		n = reap(kids, 4, 120);
		CHECK(n == 4, "after use: child (old+new contexts, memfd engine), grandchild, fork+exec, "
			"NAL object restored: %d/4 clean", n);
		NAL_ADDRESS_free(a);
	}
	{
		/* children of a parent with an engine share one copy of it (a
		 * private 3.5 MB copy each before) */
		unsigned long ino[2] = { 0, 0 };
		int fd[2], st;
		for (i = 0; i < 2; i++) {
			if (pipe(fd) != 0)
				break;
			kids[i] = fork();
			if (kids[i] == 0) {
				unsigned long v;
				close(fd[0]);
				/* p: PERSISTENT, whose operations enter the engine
				 * (c's make their connection in the front) */
				v = work(p, "sibling", 5) == 0 ? engine_copy_inode() : 0;
				_exit(write(fd[1], &v, sizeof v) == sizeof v ? 0 : 1);
			}
			close(fd[1]);
			if (read(fd[0], &ino[i], sizeof ino[i]) != sizeof ino[i])
				ino[i] = 0;
			close(fd[0]);
			waitpid(kids[i], &st, 0);
		}
		CHECK(ino[0] != 0 && ino[0] == ino[1], "two children of a parent with an engine map one copy "
			"of it (memfd inodes %lu, %lu)", ino[0], ino[1]);
	}
	CHECK(work(c, "parent-after", 20) == 0 && work(p, "parent-p-after", 20) == 0,
		"parent: still works after its children");
	DC_CTX_free(c);
	DC_CTX_free(p);
	return ct_exit();
}
