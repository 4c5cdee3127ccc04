// SPDX-License-Identifier: Apache-2.0

package nal

/*
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

// The first address of family af (AF_INET, AF_INET6) that getaddrinfo(3)
// gives for host: its bytes in out (4 or 16), the IPv6 scope in *scope;
// 0, or getaddrinfo's error (EAI_NONAME if none of that family).
static int dce_resolve(const char *host, int af, unsigned char *out, unsigned int *scope)
{
	struct addrinfo hints, *res, *p;
	int rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = af;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, NULL, &hints, &res)) != 0)
		return rc;
	rc = EAI_NONAME;
	for (p = res; p; p = p->ai_next) {
		if (p->ai_family == AF_INET && af == AF_INET) {
			memcpy(out, &((struct sockaddr_in *)(void *)p->ai_addr)->sin_addr, 4);
			rc = 0;
			break;
		}
		if (p->ai_family == AF_INET6 && af == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)p->ai_addr;
			memcpy(out, &s6->sin6_addr, 16);
			*scope = s6->sin6_scope_id;
			rc = 0;
			break;
		}
	}
	freeaddrinfo(res);
	return rc;
}
*/
import "C"

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"unsafe"

	gonal "github.com/distcache-go/distcache/goimpl/nal"
)

// In the engine, host names are resolved by the C library, as the C
// program's own calls would be (goimpl/nal SetLookup).
func init() { gonal.SetLookup(cLookup) }

// cLookup resolves host for network "ip4" or "ip6" with getaddrinfo(3):
// its first address of that family. The context is not consulted (the C
// library's own timeouts apply, as for the original's gethostbyname).
func cLookup(_ context.Context, network, host string) ([]netip.Addr, error) {
	af := C.int(C.AF_INET)
	if network == "ip6" {
		af = C.AF_INET6
	}
	ch := C.CString(host)
	defer C.free(unsafe.Pointer(ch))
	var out [16]byte
	var scope C.uint
	if rc := C.dce_resolve(ch, af, (*C.uchar)(unsafe.Pointer(&out[0])), &scope); rc != 0 {
		return nil, errors.New(C.GoString(C.gai_strerror(rc)))
	}
	if af == C.AF_INET {
		return []netip.Addr{netip.AddrFrom4([4]byte(out[:4]))}, nil
	}
	ip := netip.AddrFrom16(out)
	if scope != 0 {
		ip = ip.WithZone(strconv.FormatUint(uint64(scope), 10))
	}
	return []netip.Addr{ip}, nil
}
