#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make bench (capi part): build ctests/bench.c against the installed copy and
# run it against our dc_server (or ctests/cserver when dc_server is absent).
set -eu
: "${ROOT:?}" "${PREFIX:?}" "${DC_BIN:?}" "${OUT:?}"
SRC=$(cd "$(dirname "$0")/.." && pwd)
LIB=$ROOT$PREFIX/lib
export PKG_CONFIG_PATH=$LIB/pkgconfig PKG_CONFIG_SYSROOT_DIR=$ROOT LD_LIBRARY_PATH=$LIB
rm -rf "$OUT"; mkdir -p "$OUT"
${CC:-cc} -O2 -Wall -Wextra -Werror -o "$OUT/bench" "$SRC/ctests/bench.c" $(pkg-config --cflags --libs distcache)
if [ -x "$DC_BIN/dc_server" ]; then
	"$DC_BIN/dc_server" -listen "UNIX:$OUT/s.sock" -sessions 60000 >"$OUT/server.log" 2>&1 & srv=$!; what=dc_server
else
	${CC:-cc} -O2 -o "$OUT/cserver" "$SRC/ctests/cserver.c" $(pkg-config --cflags --libs distcache)
	"$OUT/cserver" "UNIX:$OUT/s.sock" >"$OUT/server.log" 2>&1 & srv=$!; what="ctests/cserver"
fi
trap 'kill $srv 2>/dev/null' EXIT
i=0; while [ ! -S "$OUT/s.sock" ]; do i=$((i + 1)); [ $i -gt 200 ] && { echo "bench: no server"; exit 1; }; sleep 0.05; done
echo "capi bench against $what"
"$OUT/bench" "UNIX:$OUT/s.sock" "${OPS:-2000}"
# fork() with full DC_SERVER caches (FORK_SIZES: session counts to try)
${CC:-cc} -O2 -Wall -Wextra -Werror -o "$OUT/forkbench" "$SRC/ctests/forkbench.c" $(pkg-config --cflags --libs distcacheserver)
"$OUT/forkbench" ${FORK_SIZES:-}
