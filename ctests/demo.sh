#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make demo (capi part): build ctests/demo.c with pkg-config against the
# libraries installed into $ROOT, start a server, run the parent/child demo.
set -eu
: "${ROOT:?}" "${PREFIX:?}" "${DC_BIN:?}" "${OUT:?}"
SRC=$(cd "$(dirname "$0")/.." && pwd)
LIB=$ROOT$PREFIX/lib
export PKG_CONFIG_PATH=$LIB/pkgconfig PKG_CONFIG_SYSROOT_DIR=$ROOT LD_LIBRARY_PATH=$LIB
rm -rf "$OUT"; mkdir -p "$OUT"
echo "cc demo.c \$(pkg-config --cflags --libs distcache)  # $(echo $(pkg-config --libs distcache))"
${CC:-cc} -Wall -Wextra -Werror -o "$OUT/demo" "$SRC/ctests/demo.c" $(pkg-config --cflags --libs distcache)
if [ -x "$DC_BIN/dc_server" ]; then
	"$DC_BIN/dc_server" -listen "UNIX:$OUT/s.sock" >"$OUT/server.log" 2>&1 & srv=$!
else
	${CC:-cc} -o "$OUT/cserver" "$SRC/ctests/cserver.c" $(pkg-config --cflags --libs distcache)
	"$OUT/cserver" "UNIX:$OUT/s.sock" >"$OUT/server.log" 2>&1 & srv=$!
fi
trap 'kill $srv 2>/dev/null' EXIT
i=0; while [ ! -S "$OUT/s.sock" ]; do i=$((i + 1)); [ $i -gt 200 ] && { echo "demo: no server"; exit 1; }; sleep 0.05; done
"$OUT/demo" "UNIX:$OUT/s.sock"
