/*
 * Tiny check helpers for the C suite: each CHECK prints "ok - what" or
 * "not ok - what" (run.sh counts them); ct_exit() gives the exit status.
 */
#ifndef CT_H
#define CT_H

#include <stdio.h>
#include <stdlib.h>

static int ct_failed, ct_passed;

#define CHECK(cond, ...) do { \
	if (cond) { ct_passed++; printf("ok - "); } \
	else { ct_failed++; printf("not ok - "); } \
	printf(__VA_ARGS__); printf("  [%s:%d]\n", __FILE__, __LINE__); fflush(stdout); \
} while (0)

static inline int ct_exit(void)
{
	return ct_failed ? 1 : 0;
}

#define U(s) ((const unsigned char *)(s))

#endif
