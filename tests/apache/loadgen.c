/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loadgen: a TLS handshake load driver for the Apache end-to-end test.
 *
 * Each worker thread makes one new TLS connection per request, sends one
 * HTTP/1.1 GET with "Connection: close" and reads the whole response.  A
 * worker keeps the session its last connection produced and offers it on
 * its next connection, which goes to the next port in the list, so a
 * session made on one Apache instance is resumed on the other one.  Every
 * -chain connections a worker drops its session and starts over with a
 * full handshake.
 *
 * Session IDs (TLS 1.2) and stateful tickets (TLS 1.3, SSLSessionTickets
 * off) are both plain OpenSSL client sessions here, which is why this is
 * C: Go's TLS client resumes TLS 1.2 only through session tickets.
 *
 * -hold opens -c connections at once and finishes every handshake (for at
 * most 5 s) before any of them sends its request: each server worker
 * (prefork child or event thread) then holds one connection, so with -c
 * equal to the number of workers each prefork child must answer, or a
 * handshake times out.
 *
 * -at N:COMMAND runs COMMAND through /bin/sh once N requests have
 * finished, while the load goes on (graceful restart, cache outage).
 *
 * -time SECS ends the run after SECS seconds (or -n requests, whichever
 * comes first): a worker starts no request after that, and the summary
 * covers the requests started, all of which finished.  Not with -at.
 *
 * The last line on stdout is a summary of key=value pairs; the exit status
 * is 0 when every request got an HTTP 200, 1 otherwise, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_PORTS 8
#define MAX_ACTIONS 8
#define MAX_REPORTED_ERRORS 20
#define HOLD_WAIT_MS 5000

struct action {
	long at;
	const char *cmd;
};

struct result {
	unsigned char ok;      /* HTTP 200 received */
	unsigned char offered; /* a session was offered */
	unsigned char reused;  /* the server resumed it */
	unsigned char port;    /* index into ports[] */
	double hs_ms;          /* TCP connect + TLS handshake */
};

static int ports[MAX_PORTS];
static int nports;
static long total = 1000;
static int conc = 16;
static int chain = 10;
static int timeout_s = 10;
static int tls_version = TLS1_2_VERSION;
static const char *servername = "localhost";
static const char *path = "/";
static int hold;               /* -hold: all handshakes before any request */
static double time_limit_ms;   /* -time: no request starts after this (0: none) */
static double start_ms;
static atomic_int arrived;     /* -hold: workers past their handshake */
static struct action actions[MAX_ACTIONS];
static int nactions;

static SSL_CTX *ctx;
static struct result *results;
static atomic_long next_job;
static atomic_long done_jobs;
static atomic_int reported_errors;

struct worker {
	int id;
	SSL_SESSION *sess; /* session to offer on the next connection */
	SSL_SESSION *got;  /* session the current connection produced */
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void report(long job, int port, const char *what)
{
	char buf[256] = "";
	unsigned long e = ERR_peek_last_error();

	if (e)
		ERR_error_string_n(e, buf, sizeof buf);
	if (atomic_fetch_add(&reported_errors, 1) < MAX_REPORTED_ERRORS)
		fprintf(stderr, "loadgen: request %ld to port %d: %s%s%s%s\n",
			job, port, what, errno ? ": " : "",
			errno ? strerror(errno) : "", buf[0] ? buf : "");
	ERR_clear_error();
}

/* Called by OpenSSL for every session the server hands out (the full
 * handshake in TLS 1.2, every ticket in TLS 1.3).  Keep the newest. */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct worker *w = SSL_get_app_data(ssl);

	if (w->got)
		SSL_SESSION_free(w->got);
	w->got = sess;
	return 1; /* we keep the reference */
}

static int dial(int port)
{
	struct sockaddr_in sa;
	struct timeval tv = { .tv_sec = timeout_s };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	/* Linux applies SO_SNDTIMEO to connect() as well. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One request; fills *r.  Returns 1 on HTTP 200. */
static int one_request(struct worker *w, long job, int pi, struct result *r)
{
	char req[256], resp[4096];
	size_t have = 0;
	int fd, n, port = ports[pi];
	double t0 = now_ms();
	SSL *ssl = NULL;

	r->port = pi;
	r->offered = w->sess != NULL;
	errno = 0;
	fd = dial(port);
	if (fd < 0) {
		report(job, port, "connect failed");
		if (hold)
			atomic_fetch_add(&arrived, 1);
		return 0;
	}
	ssl = SSL_new(ctx);
	SSL_set_app_data(ssl, w);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, servername);
	if (w->sess)
		SSL_set_session(ssl, w->sess);
	if (SSL_connect(ssl) != 1) {
		report(job, port, "TLS handshake failed");
		if (hold)
			atomic_fetch_add(&arrived, 1);
		goto out;
	}
	r->hs_ms = now_ms() - t0;
	r->reused = SSL_session_reused(ssl);
	if (hold) {
		struct timespec tick = { 0, 1000 * 1000 };
		double until = now_ms() + HOLD_WAIT_MS;

		/* Every server worker now holds one of our connections; only
		 * when all handshakes are done does any request go out.  The
		 * event MPM may queue a connection for a process whose
		 * workers are all held, so the wait is bounded. */
		atomic_fetch_add(&arrived, 1);
		while (atomic_load(&arrived) < conc && now_ms() < until)
			nanosleep(&tick, NULL);
	}
	n = snprintf(req, sizeof req,
		     "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
		     path, servername);
	if (SSL_write(ssl, req, n) != n) {
		report(job, port, "write failed");
		goto out;
	}
	for (;;) {
		char sink[4096];
		char *p = have < sizeof resp - 1 ? resp + have : sink;
		size_t room = have < sizeof resp - 1 ? sizeof resp - 1 - have : sizeof sink;

		n = SSL_read(ssl, p, room);
		if (n <= 0)
			break;
		if (p == resp + have)
			have += n;
	}
	resp[have] = 0;
	if (SSL_get_error(ssl, n) != SSL_ERROR_ZERO_RETURN) {
		report(job, port, "read failed");
		goto out;
	}
	if (strncmp(resp, "HTTP/1.1 200 ", 13) != 0) {
		char line[80];

		snprintf(line, sizeof line, "bad response '%.60s'", resp);
		*strchrnul(line, '\r') = 0;
		report(job, port, line);
		goto out;
	}
	r->ok = 1;
	SSL_shutdown(ssl);
out:
	SSL_free(ssl);
	close(fd);
	return r->ok;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	long k = 0;

	for (;;) {
		long job;
		struct result *r;

		if (time_limit_ms > 0 && now_ms() - start_ms >= time_limit_ms)
			break;
		job = atomic_fetch_add(&next_job, 1);
		if (job >= total)
			break;
		r = &results[job];
		if (k % chain == 0 && w->sess) {
			SSL_SESSION_free(w->sess);
			w->sess = NULL;
		}
		w->got = NULL;
		if (one_request(w, job, (w->id + k) % nports, r) && w->got) {
			if (w->sess)
				SSL_SESSION_free(w->sess);
			w->sess = w->got;
			w->got = NULL;
		} else if (!r->ok && w->sess) {
			/* a failed connection starts a new chain */
			SSL_SESSION_free(w->sess);
			w->sess = NULL;
			k = -1;
		}
		if (w->got) {
			SSL_SESSION_free(w->got);
			w->got = NULL;
		}
		k++;
		atomic_fetch_add(&done_jobs, 1);
	}
	if (w->sess)
		SSL_SESSION_free(w->sess);
	return NULL;
}

static void *actions_main(void *arg)
{
	(void)arg;
	for (int i = 0; i < nactions; i++) {
		struct timespec tick = { 0, 2 * 1000 * 1000 };

		while (atomic_load(&done_jobs) < actions[i].at &&
		       atomic_load(&done_jobs) < total)
			nanosleep(&tick, NULL);
		fprintf(stderr, "loadgen: after %ld requests: %s\n",
			atomic_load(&done_jobs), actions[i].cmd);
		int rc = system(actions[i].cmd);
		if (rc != 0)
			fprintf(stderr, "loadgen: command exited with %d\n", rc);
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: loadgen -p PORT[,PORT...] [-n requests] [-c concurrency]\n"
		"       [-chain N] [-tls 1.2|1.3] [-sni NAME] [-path PATH]\n"
		"       [-timeout SECS] [-time SECS] [-hold] [-at N:COMMAND]...\n");
	exit(2);
}

static void parse_ports(char *s)
{
	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		if (nports == MAX_PORTS)
			usage();
		ports[nports++] = atoi(tok);
	}
}

int main(int argc, char **argv)
{
	pthread_t *tids, actor;
	struct worker *ws;
	long ok = 0, offered = 0, reused = 0, offered_ok = 0, nhs = 0;
	long per_port_ok[MAX_PORTS] = { 0 };
	double *hs, t0, elapsed;
	long ran;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-hold")) {
			hold = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (!strcmp(a, "-p"))
			parse_ports(argv[++i]);
		else if (!strcmp(a, "-n"))
			total = atol(argv[++i]);
		else if (!strcmp(a, "-c"))
			conc = atoi(argv[++i]);
		else if (!strcmp(a, "-chain"))
			chain = atoi(argv[++i]);
		else if (!strcmp(a, "-timeout"))
			timeout_s = atoi(argv[++i]);
		else if (!strcmp(a, "-time")) {
			time_limit_ms = atof(argv[++i]) * 1e3;
			if (!(time_limit_ms > 0))
				usage();
		}
		else if (!strcmp(a, "-path"))
			path = argv[++i];
		else if (!strcmp(a, "-sni"))
			servername = argv[++i];
		else if (!strcmp(a, "-tls")) {
			i++;
			if (!strcmp(argv[i], "1.2"))
				tls_version = TLS1_2_VERSION;
			else if (!strcmp(argv[i], "1.3"))
				tls_version = TLS1_3_VERSION;
			else
				usage();
		} else if (!strcmp(a, "-at")) {
			char *colon = strchr(argv[++i], ':');

			if (!colon || nactions == MAX_ACTIONS)
				usage();
			*colon = 0;
			actions[nactions].at = atol(argv[i]);
			actions[nactions++].cmd = colon + 1;
		} else
			usage();
	}
	if (nports == 0 || total < 1 || conc < 1 || chain < 1 || timeout_s < 1)
		usage();
	if (nactions && time_limit_ms > 0)
		usage(); /* an action waits for a count of requests -time may not reach */
	if (hold)
		total = conc; /* one connection per worker */

	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(ctx, tls_version);
	SSL_CTX_set_max_proto_version(ctx, tls_version);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	/* a close without close_notify ends the response like EOF */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
					    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, new_session);

	results = calloc(total, sizeof *results);
	tids = calloc(conc, sizeof *tids);
	ws = calloc(conc, sizeof *ws);
	hs = calloc(total, sizeof *hs);
	if (!results || !tids || !ws || !hs)
		return 2;

	t0 = start_ms = now_ms();
	if (nactions)
		pthread_create(&actor, NULL, actions_main, NULL);
	for (int i = 0; i < conc; i++) {
		ws[i].id = i;
		pthread_create(&tids[i], NULL, worker_main, &ws[i]);
	}
	for (int i = 0; i < conc; i++)
		pthread_join(tids[i], NULL);
	elapsed = now_ms() - t0;
	/* the requests started (each finished): all of them, but for -time */
	ran = atomic_load(&done_jobs);
	if (ran > total)
		ran = total;
	if (nactions)
		pthread_join(actor, NULL);
	total = ran;

	for (long j = 0; j < total; j++) {
		struct result *r = &results[j];

		if (r->ok) {
			ok++;
			per_port_ok[r->port]++;
			hs[nhs++] = r->hs_ms;
			if (r->offered) {
				offered_ok++;
				reused += r->reused;
			}
		}
		offered += r->offered;
	}
	qsort(hs, nhs, sizeof *hs, cmp_double);
	printf("handshakes=%ld ok=%ld failed=%ld offered=%ld resumed=%ld "
	       "resumed_pct=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f secs=%.3f",
	       total, ok, total - ok, offered, reused,
	       offered_ok ? 100.0 * reused / offered_ok : 0.0,
	       nhs ? hs[nhs / 2] : 0.0, nhs ? hs[nhs * 99 / 100] : 0.0,
	       nhs ? hs[nhs - 1] : 0.0, elapsed / 1e3);
	for (int i = 0; i < nports; i++)
		printf(" ok_%d=%ld", ports[i], per_port_ok[i]);
	printf("\n");
	return ok == total ? 0 : 1;
}
