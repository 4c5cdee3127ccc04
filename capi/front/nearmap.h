/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reader of dc_client's shared near map (goimpl/nearmap, dc_client
 * -nearmap): the C front asks dc_client for the map once (dcnm_probe, on a
 * connection of a unix target) and from then on answers a GET the map
 * holds without a round trip (dcnm_lookup).  The layout's constants come
 * from goimpl/nearmap (wire_gen.h); capi/wiretest checks this reader
 * against the Go writer, entries torn while being written included.
 */
#ifndef DCF_NEARMAP_H
#define DCF_NEARMAP_H

#include <stddef.h>
#include <stdint.h>
#include "wire.h"

/* A mapped map, read-only. */
struct dcnm {
	const unsigned char *base;
	size_t size;
	uint32_t slots;
};

enum { DCNM_TIMEOUT = -2, DCNM_FAILED = -1, DCNM_NONE = 0, DCNM_MAPPED = 1 };

/* Asks the server on fd (a connected unix socket, idle) for its map with a
 * GET of DCW_NM_PROBE_ID under uid, waiting until deadline_us (CLOCK_MONOTONIC
 * microseconds): DCNM_MAPPED (m filled), DCNM_NONE (a clean answer without a
 * usable map: the connection can go on), DCNM_TIMEOUT (no answer by the
 * deadline) or DCNM_FAILED (the connection died or answered wrong); after
 * those two the connection is not to be used again. */
DCF_WIRE_API int dcnm_probe(int fd, uint32_t uid, long long deadline_us, struct dcnm *m);

/* Validates and maps the map of descriptor fd (not closed): a file of tmpfs
 * (a memfd; not hugetlbfs, whose pages may be missing) sealed against
 * shrinking, with a header that matches its size; 1 on success. */
DCF_WIRE_API int dcnm_map(int fd, struct dcnm *m);

/* The entry of id, if the map may be read at now_ns (CLOCK_MONOTONIC) and
 * holds a whole, live one: its data copied to out (DCW_NM_MAX_DATA bytes of
 * room), *len its length, 1; else 0. */
DCF_WIRE_API int dcnm_lookup(const struct dcnm *m, const unsigned char *id, size_t id_len,
		long long now_ns, unsigned char *out, size_t *len);

/* Whether the map's lease ended over grace_ns before now_ns, or it is
 * closed (its writer gone or off for that long): time to ask again. */
DCF_WIRE_API int dcnm_stale(const struct dcnm *m, long long now_ns, long long grace_ns);

DCF_WIRE_API void dcnm_unmap(struct dcnm *m);

#endif
