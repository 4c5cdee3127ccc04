/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers compiled into each front library. */
#include "front.h"

DCF_HIDDEN void dcf_stale(void)
{
	dcf_shared_get()->stale();
}
