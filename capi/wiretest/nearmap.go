// SPDX-License-Identifier: Apache-2.0

package wiretest

/*
#cgo CFLAGS: -I${SRCDIR}/../front -Wall -Wextra -Werror
#include <stdlib.h>
#include "nearmap.h"

// tear reads id n times while another thread rewrites it: the number of
// hits whose data is not one of the writer's (the writer's are a byte k
// repeated k+1 times), and the number of hits.
static void tear(const struct dcnm *m, const unsigned char *id, size_t id_len,
		long long now, int n, int *bad, int *hits)
{
	unsigned char out[DCW_NM_MAX_DATA];
	size_t len, i;
	int j;

	*bad = *hits = 0;
	for (j = 0; j < n; j++) {
		if (!dcnm_lookup(m, id, id_len, now, out, &len))
			continue;
		(*hits)++;
		if (len != (size_t)out[0] + 1) {
			(*bad)++;
			continue;
		}
		for (i = 0; i < len; i++)
			if (out[i] != out[0]) {
				(*bad)++;
				break;
			}
	}
}
*/
import "C"

import "unsafe"

// NearMap is a map the C reader mapped (dcnm_map).
type NearMap struct{ m C.struct_dcnm }

// MapNear is dcnm_map of fd; nil when it refuses.
func MapNear(fd int) *NearMap {
	var n NearMap
	if C.dcnm_map(C.int(fd), &n.m) != 1 {
		return nil
	}
	return &n
}

// Unmap is dcnm_unmap.
func (n *NearMap) Unmap() { C.dcnm_unmap(&n.m) }

// Lookup is dcnm_lookup.
func (n *NearMap) Lookup(id []byte, now int64) ([]byte, bool) {
	cid := C.CBytes(append([]byte{0}, id...))
	defer C.free(cid)
	out := (*C.uchar)(C.malloc(C.DCW_NM_MAX_DATA))
	defer C.free(unsafe.Pointer(out))
	var l C.size_t
	if C.dcnm_lookup(&n.m, (*C.uchar)(unsafe.Add(cid, 1)), C.size_t(len(id)), C.longlong(now), out, &l) != 1 {
		return nil, false
	}
	return C.GoBytes(unsafe.Pointer(out), C.int(l)), true
}

// Stale is dcnm_stale.
func (n *NearMap) Stale(now, grace int64) bool {
	return C.dcnm_stale(&n.m, C.longlong(now), C.longlong(grace)) != 0
}

// Tear looks id up times times in C: how many hits were not an entry the
// writer wrote, and how many hits.
func (n *NearMap) Tear(id []byte, now int64, times int) (bad, hits int) {
	cid := C.CBytes(id)
	defer C.free(cid)
	var b, h C.int
	C.tear(&n.m, (*C.uchar)(cid), C.size_t(len(id)), C.longlong(now), C.int(times), &b, &h)
	return int(b), int(h)
}

// The probe's results.
const (
	ProbeTimeout = C.DCNM_TIMEOUT
	ProbeFailed  = C.DCNM_FAILED
	ProbeNone    = C.DCNM_NONE
	ProbeMapped  = C.DCNM_MAPPED
)

// Probe is dcnm_probe on fd: its result and, when mapped, the map.
func Probe(fd int, uid uint32, deadlineUS int64) (int, *NearMap) {
	var n NearMap
	r := int(C.dcnm_probe(C.int(fd), C.uint32_t(uid), C.longlong(deadlineUS), &n.m))
	if r != ProbeMapped {
		return r, nil
	}
	return r, &n
}
