/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers compiled into each front library. */
#include <stdlib.h>
#include "front.h"

DCF_HIDDEN void dcf_stale(void)
{
	dcf_shared_get()->stale();
}

DCF_HIDDEN void *dcf_new_tracked(size_t n, int kind)
{
	struct dcf_obj *o = calloc(1, n);

	if (o && !dcf_track(o, kind)) {
		free(o);
		return NULL;
	}
	return o;
}

DCF_HIDDEN void dcf_discard(void *h, int kind)
{
	dcf_forget(h, kind);
	free(h);
}
