/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libdistcache.so.1 and libdistcacheserver.so.1 use the loader of libnal.so.1
 * (so a process has one engine), through libnal's private symbol
 * dcf_front_shared (version node DISTCACHE_GO_FRONT_<DCF_SHARED_VERSION>).
 */
#include "front.h"

DCF_HIDDEN const struct dcf_shared *dcf_shared_get(void)
{
	static const struct dcf_shared *sh;
	const struct dcf_shared *s = __atomic_load_n(&sh, __ATOMIC_RELAXED);

	if (!s) {
		s = dcf_front_shared();	/* the same value in every thread */
		__atomic_store_n(&sh, s, __ATOMIC_RELAXED);
	}
	return s;
}
