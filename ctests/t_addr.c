/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The address grammar through the C library: t_addr CORPUS DC_SERVER_BIN
 * Every line of the shared corpus (goimpl/nal/testdata/addresses.txt, also
 * run by goimpl/nal's TestAddressCorpus) through DC_CTX_new's pre-check in
 * the front (flags 0: no engine) and NAL_ADDRESS_create in the engine; then
 * targets written as inet_aton(3) literals (127.1, 0x7f000001) against a
 * dc_server listening on 127.0.0.1: operations through them must work, not
 * only DC_CTX_new.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <libnal/nal.h>
#include <distcache/dc_client.h>
#include "ct.h"

/* Split a corpus line "<nal> <client> <address>" in place: 1 for an
 * address line, 0 for a comment or blank, -1 for a malformed line. */
static int split(char *line, char *want_nal, int *want_client, char **addr)
{
	char *nl, *sp;

	if ((nl = strchr(line, '\n')) != NULL)
		*nl = 0;
	if (line[0] == 0 || line[0] == '#')
		return 0;
	sp = strchr(line, ' ');
	if (!sp || sp == line || (size_t)(sp - line) > 2 || (sp[1] != 'y' && sp[1] != 'n') || sp[2] != ' ')
		return -1;
	memcpy(want_nal, line, (size_t)(sp - line));
	want_nal[sp - line] = 0;
	*want_client = sp[1] == 'y';
	*addr = sp + 3;
	return 1;
}

/* The checks corpus() will make: two per address, one per malformed line,
 * one for the count. */
static int corpus_checks(FILE *f, int *n)
{
	char line[1024], nal[3], *addr;
	int cl, checks = 1, r;

	*n = 0;
	while (fgets(line, sizeof line, f)) {
		r = split(line, nal, &cl, &addr);
		if (r > 0)
			(*n)++, checks += 2;
		else if (r < 0)
			checks++;
	}
	rewind(f);
	return checks;
}

static void corpus(FILE *f, int total)
{
	char line[1024];
	int lineno = 0;

	while (fgets(line, sizeof line, f)) {
		char *addr, want_nal[3];
		int want_client, client, ok, got_c, got_l, r, i, first = 0, same;
		NAL_ADDRESS *a;
		DC_CTX *c;

		lineno++;
		r = split(line, want_nal, &want_client, &addr);
		if (r < 0)
			CHECK(0, "corpus line %d is well formed", lineno);
		if (r <= 0)
			continue;

		c = DC_CTX_new(addr, 0);
		client = c != NULL;
		DC_CTX_free(c);
		CHECK(client == want_client, "line %d: DC_CTX_new(\"%s\", 0) %s", lineno, addr,
			want_client ? "accepts" : "refuses");

		/* twice: the second create may be the front's alone (a string
		 * the engine created before) */
		for (i = 0, same = 1; i < 2; i++) {
			a = NAL_ADDRESS_new();
			ok = NAL_ADDRESS_create(a, addr, 4096);
			got_c = NAL_ADDRESS_can_connect(a);
			got_l = NAL_ADDRESS_can_listen(a);
			NAL_ADDRESS_free(a);
			if (i == 0)
				first = ok * 4 + got_c * 2 + got_l;
			else
				same = first == ok * 4 + got_c * 2 + got_l;
		}
		if (strcmp(want_nal, "-") == 0)
			CHECK(!ok && same, "line %d: NAL_ADDRESS_create(\"%s\") refuses", lineno, addr);
		else
			CHECK(ok && got_l && got_c == (strcmp(want_nal, "cl") == 0) && same,
				"line %d: NAL_ADDRESS_create(\"%s\") gives %s (twice)", lineno, addr, want_nal);
	}
	CHECK(total >= 50, "the corpus has %d addresses", total);
}

/* A dc_server on a loopback TCP port the kernel picks (its listening socket
 * handed over as FD:3). */
static pid_t start_server(const char *bin, unsigned int *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	pid_t pid;

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		return -1;
	*port = ntohs(sa.sin_port);
	pid = fork();
	if (pid == 0) {
		if (fd != 3) {
			dup2(fd, 3);
			close(fd);
		}
		execl(bin, bin, "-listen", "FD:3", (char *)NULL);
		_exit(127);
	}
	close(fd);
	return pid;
}

static const char *hosts[] = { "127.0.0.1", "127.1", "0x7f000001", "0177.0.0.1", "localhost" };
#define NHOSTS (sizeof hosts / sizeof hosts[0])
#define LITERAL_CHECKS ((int)(1 + NHOSTS * 2 * 3))

static void literal_hosts(const char *bin)
{
	unsigned int port = 0, i;
	char target[64];
	pid_t pid = start_server(bin, &port);

	CHECK(pid > 0, "dc_server started on 127.0.0.1:%u", port);
	for (i = 0; i < NHOSTS; i++) {
		unsigned int f;
		for (f = 0; f <= DC_CTX_FLAG_PERSISTENT; f += DC_CTX_FLAG_PERSISTENT) {
			DC_CTX *c;
			unsigned char id[32], buf[64];
			unsigned int used = 0, idl;
			int has = -1, tries;

			snprintf(target, sizeof target, "IP:%s:%u", hosts[i], port);
			snprintf((char *)id, sizeof id, "addr-%u-%u-%d", i, f, (int)getpid());
			idl = (unsigned int)strlen((char *)id);
			c = DC_CTX_new(target, f | DC_CTX_FLAG_PERSISTENT_LATE);
			CHECK(c != NULL, "DC_CTX_new(\"%s\", %#x)", target, f);
			/* the server may still be starting: wait for it (10 s) */
			for (tries = 0; c && pid > 0 && tries < 200 && (has = DC_CTX_has_session(c, id, idl)) < 0; tries++)
				usleep(50000);
			CHECK(has == 0, "%s flags %#x: has_session answers 0 (got %d)", target, f, has);
			CHECK(c && DC_CTX_add_session(c, id, idl, U("session-data"), 12, 60000) == 1 &&
				DC_CTX_get_session(c, id, idl, buf, sizeof buf, &used) == 1 &&
				used == 12 && memcmp(buf, "session-data", 12) == 0,
				"%s flags %#x: add then get through the target", target, f);
			DC_CTX_free(c);
		}
	}
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}

int main(int argc, char **argv)
{
	FILE *f;
	int n;

	if (argc < 3) {
		fprintf(stderr, "usage: t_addr CORPUS DC_SERVER\n");
		return 2;
	}
	f = fopen(argv[1], "r");
	if (!f) {
		CT_PLAN(1);
		CHECK(0, "open the corpus %s", argv[1]);
		return ct_exit();
	}
	CT_PLAN(corpus_checks(f, &n) + LITERAL_CHECKS);
	corpus(f, n);
	fclose(f);
	literal_hosts(argv[2]);
	return ct_exit();
}
