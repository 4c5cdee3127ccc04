// SPDX-License-Identifier: Apache-2.0

// Package nearmap is dc_client's near cache shared with the local clients
// in memory (dc_client -nearmap): a table of fixed-size slots in a sealed
// memfd that dc_client writes as its near cache changes and that the C
// library's fast path (capi/front/nearmap.c) maps read-only, so that a
// GET the near cache holds costs the application a lookup in its own
// address space instead of a round trip to dc_client with a sleep and a
// wake-up on each side.
//
// A client GETs the reserved id proto.NearMapID on dc_client's unix socket and
// gets the map's read-only descriptor with the answer (SCM_RIGHTS). Each
// slot is written under a sequence count (odd while it changes) and
// carries a sum of its entry, so a reader that copied it while it changed
// sees so and asks dc_client instead. Buckets of two slots are found by
// the id's FNV-1a hash. The header's generation forgets every entry at
// once (a flush of the near cache) or stops all reading (odd: no live
// subscription to the server's removal notices), and its lease bounds how
// long readers may trust the map without dc_client vouching for it again:
// dc_client renews it while its subscription is live, so a dc_client that
// died, stopped or lost its server stops being read within a lease
// (100 ms). Entries end when their session's lifetime would.
package nearmap
