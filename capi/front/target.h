/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DC_CTX_new's pre-check of a target address, without the engine.  Kept in
 * its own file (target.c) so that it survives a regeneration of the
 * front's trampolines.  Private to the front.
 */
#ifndef DCF_TARGET_H
#define DCF_TARGET_H

#include <stddef.h>
#include "engine.h"

/* DCF_TARGET_MAX bytes hold any canonical target (address strings are at
 * most 255 bytes; a resolved IPv6 form with a numeric zone is shorter). */
#define DCF_TARGET_MAX 256

/*
 * 1 if t is an address a client context accepts, by the rule of goimpl/nal's
 * ParseTarget (goimpl/nal/grammar.go; both are tested against
 * goimpl/nal/testdata/addresses.txt): IP:/IPv4:<host>:<port>,
 * IPv6:[<host>]:<port> or UNIX:<non-empty path>.  A host name is resolved
 * here, once; canon (DCF_TARGET_MAX bytes) receives the resolved form
 * (IP:a.b.c.d:port, IPv6:[addr]:port or the unix address as given), which
 * the engine parses without a lookup.  *is_unix tells a unix socket.
 */
DCF_HIDDEN int dcf_target(const char *t, char *canon, int *is_unix);

#endif
