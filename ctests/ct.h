/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tiny check helpers for the C suite, in the TAP style: a program first
 * declares how many checks it runs (CT_PLAN(n) prints "1..n"), each CHECK
 * prints "ok - what" or "not ok - what", and ct_exit() fails the program
 * when a check failed or when it ran a different number of checks than it
 * planned (a block skipped by an early return is a failure, not a pass).
 * run.sh compares the plan line with the check lines it sees as well, so a
 * program that dies before ct_exit() fails too.
 *
 * Checks are made by the process that declared the plan: forked children
 * report through their exit status, never with CHECK.
 */
#ifndef CT_H
#define CT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int ct_failed, ct_passed, ct_planned = -1;

#define CT_PLAN(n) do { \
	ct_planned = (n); printf("1..%d\n", ct_planned); fflush(stdout); \
} while (0)

#define CHECK(cond, ...) do { \
	if (cond) { ct_passed++; printf("ok - "); } \
	else { ct_failed++; printf("not ok - "); } \
	printf(__VA_ARGS__); printf("  [%s:%d]\n", __FILE__, __LINE__); fflush(stdout); \
} while (0)

static inline int ct_exit(void)
{
	int ran = ct_passed + ct_failed;

	if (ct_planned < 0) {
		printf("# no plan: the program did not call CT_PLAN\n");
		return 1;
	}
	if (ran != ct_planned) {
		printf("# planned %d checks, ran %d\n", ct_planned, ran);
		return 1;
	}
	return ct_failed ? 1 : 0;
}

#define U(s) ((const unsigned char *)(s))

/* The number of lines of the file at path that contain s (-1: unreadable);
 * for checking what a program said on its captured stderr. */
static inline int ct_lines(const char *path, const char *s)
{
	char line[2048];
	int n = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strstr(line, s))
			n++;
	fclose(f);
	return n;
}

/* A field of /proc/self/status in KiB ("VmRSS", "VmHWM", "RssAnon"); -1
 * if absent. */
static inline long ct_status_kb(const char *field)
{
	char line[256], fmt[64];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	snprintf(fmt, sizeof fmt, "%s: %%ld", field);
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, fmt, &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static inline int ct_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Microseconds on the monotonic clock; for timings. */
static inline double ct_now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

/* The median of v[0..n-1] (sorts v); for the benchmarks. */
static inline double ct_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, ct_cmp_double);
	return v[n / 2];
}

#endif
