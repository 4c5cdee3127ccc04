/* Helpers compiled into each front library. */
#include <stdio.h>
#include "front.h"

DCF_HIDDEN void dcf_stale(void)
{
	static unsigned long said;
	unsigned long g = dcf_gen();

	if (said != g) {
		said = g;
		fprintf(stderr, "distcache: an object created before fork() "
			"cannot be used in the child; the call fails\n");
	}
}
