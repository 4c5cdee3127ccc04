/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DC_CTX_new's pre-check (see target.h): the client rule of the address
 * grammar, in C, so that DC_CTX_new never needs the engine.  Every branch
 * here has its counterpart in goimpl/nal/grammar.go; the shared corpus
 * goimpl/nal/testdata/addresses.txt keeps them in step (ctests/t_addr.c,
 * goimpl/nal TestAddressCorpus).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "target.h"

#define UNIX_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

/* C white space and NUL's neighbours that no host may contain. */
static int bad_host(const char *h)
{
	return strpbrk(h, " \t\n\v\f\r") != NULL;
}

/* strtoul(3) rules: optional white space and sign, at least one digit,
 * nothing after the digits, at most 65535 ("-0" is 0). */
static int port_of(const char *s, unsigned int *port)
{
	const char *d = s;
	char *end;
	unsigned long v;

	while (*d == ' ' || (*d >= '\t' && *d <= '\r'))
		d++;
	if (*d == '+' || *d == '-')
		d++;
	if (*d < '0' || *d > '9')
		return 0;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != 0 || v > 65535)
		return 0;
	*port = (unsigned int)v;
	return 1;
}

/* A zone is a decimal interface index (at most 2^32-1) or the name of an
 * existing interface. */
static int zone_ok(const char *z)
{
	const char *d;
	char *end;
	unsigned long long v;

	if (*z == 0)
		return 0;
	for (d = z; *d >= '0' && *d <= '9'; d++)
		;
	if (*d == 0) {
		errno = 0;
		v = strtoull(z, &end, 10);
		if (errno == 0 && v <= 0xffffffffull)
			return 1;
	}
	return if_nametoindex(z) != 0;
}

/* Resolve host to its first address of family into out ("a.b.c.d" or
 * "addr%index"). */
static int resolve(const char *host, int family, char *out, size_t n)
{
	struct addrinfo hints, *res = NULL, *ai;
	int ok = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return 0;
	for (ai = res; ai && !ok; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET && family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)ai->ai_addr;
			ok = inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)n) != NULL;
		} else if (ai->ai_family == AF_INET6 && family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (const void *)ai->ai_addr;
			size_t l;

			if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) ||
			    !inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)n))
				continue;
			l = strlen(out);
			if (s6->sin6_scope_id)
				snprintf(out + l, n - l, "%%%u", (unsigned int)s6->sin6_scope_id);
			ok = 1;
		}
	}
	freeaddrinfo(res);
	return ok;
}

int dcf_target(const char *t, char *canon, int *is_unix)
{
	size_t n = strlen(t);
	const char *rest, *colon, *close, *pct;
	char host[DCF_TARGET_MAX], ip[INET6_ADDRSTRLEN + 16];
	unsigned int port;

	*is_unix = 0;
	if (n < 2 || n > 255)
		return 0;
	if (strncmp(t, "UNIX:", 5) == 0) {
		rest = t + 5;
		if (*rest == 0 || strlen(rest) >= UNIX_PATH_MAX)
			return 0;
		*is_unix = 1;
		memcpy(canon, t, n + 1);
		return 1;
	}
	if (strncmp(t, "IPv6:[", 6) == 0) {
		close = strchr(t + 6, ']');
		if (!close || close == t + 6 || close[1] != ':')
			return 0;
		memcpy(host, t + 6, (size_t)(close - (t + 6)));
		host[close - (t + 6)] = 0;
		if (bad_host(host) || !port_of(close + 2, &port))
			return 0;
		if ((pct = strchr(host, '%')) != NULL) {
			struct in6_addr a6;
			char lit[DCF_TARGET_MAX];

			/* only a literal has a zone */
			memcpy(lit, host, (size_t)(pct - host));
			lit[pct - host] = 0;
			if (inet_pton(AF_INET6, lit, &a6) != 1 || !zone_ok(pct + 1))
				return 0;
		}
		if (!resolve(host, AF_INET6, ip, sizeof ip))
			return 0;
		snprintf(canon, DCF_TARGET_MAX, "IPv6:[%s]:%u", ip, port);
		return 1;
	}
	if (strncmp(t, "IP:", 3) == 0)
		rest = t + 3;
	else if (strncmp(t, "IPv4:", 5) == 0)
		rest = t + 5;
	else
		return 0;	/* FD:, IPv6:<port> and anything else */
	colon = strchr(rest, ':');
	if (!colon || colon == rest)
		return 0;	/* no host: listen-only */
	memcpy(host, rest, (size_t)(colon - rest));
	host[colon - rest] = 0;
	if (bad_host(host) || !port_of(colon + 1, &port) || !resolve(host, AF_INET, ip, sizeof ip))
		return 0;
	snprintf(canon, DCF_TARGET_MAX, "IP:%s:%u", ip, port);
	return 1;
}
