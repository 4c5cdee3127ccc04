/*
 * libdistcache.so.1 and libdistcacheserver.so.1 use the loader of libnal.so.1
 * (so a process has one engine).  They reach it through a call of the public
 * NAL_encode_bin() with a NULL bin_len, which the original rejected by
 * crashing, so the front exports nothing beyond the public API.
 */
#include <stdio.h>
#include <stdlib.h>
#include "front.h"

DCF_HIDDEN const struct dcf_shared *dcf_shared_get(void)
{
	static const struct dcf_shared *sh;
	const struct dcf_shared *s = __atomic_load_n(&sh, __ATOMIC_ACQUIRE);
	unsigned char *p = NULL;

	if (s)
		return s;
	if (!NAL_encode_bin(&p, NULL, (const unsigned char *)DCF_SHARED_KEY, 0) || !p ||
	    ((const struct dcf_shared *)(void *)p)->version != DCF_SHARED_VERSION) {
		fprintf(stderr, "distcache: libnal.so.1 is not the distcache-go front\n");
		abort();
	}
	s = (const struct dcf_shared *)(void *)p;
	__atomic_store_n(&sh, s, __ATOMIC_RELEASE);
	return s;
}
