/* SPDX-License-Identifier: Apache-2.0 */
/* scripts/engine-version.c: prints the version the Go engine reports
 * (dce_engine_version), for make check-version.
 *   cc -o engine-version scripts/engine-version.c -ldl
 *   ./engine-version path/to/libdistcache-engine.so */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	void *h;
	const char *(*fn)(void);

	if (argc != 2) {
		fprintf(stderr, "usage: %s ENGINE\n", argv[0]);
		return 2;
	}
	h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	*(void **)&fn = dlsym(h, "dce_engine_version");
	if (fn == NULL) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	printf("%s\n", fn());
	return 0;
}
