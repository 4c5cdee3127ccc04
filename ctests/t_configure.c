/* SPDX-License-Identifier: Apache-2.0 */
/* What httpd's configure (--with-distcache) compiles and links. */
#include <distcache/dc_client.h>
#include <stdio.h>

#if DISTCACHE_CLIENT_API != 0x0001
#error "DISTCACHE_CLIENT_API is not 0x0001"
#endif

int main(void)
{
	DC_CTX *c = DC_CTX_new("UNIX:/tmp/none", 0);

	printf("1..1\n");
	printf("%s - DC_CTX_new links and runs\n", c ? "ok" : "not ok");
	DC_CTX_free(c);
	return c ? 0 : 1;
}
