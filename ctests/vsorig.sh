#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make bench ORIG=/prefix (capi part): ctests/vsorig.c built against our
# installed copy and against the distcache 1.5 installation at $ORIG (its
# headers and libraries as installed there; nothing of it is built here),
# run in alternating rounds: libnal object creation (pinned to one CPU when
# taskset is there) and DC_CTX latency against one dc_server of ours on a
# unix socket, the same server for both (unpinned, and with client and
# server pinned to one CPU; a persistent GET's context switches), and the CPU and context switches of a
# persistent GET made every 2 ms (spaced: what an Apache child's lookup
# between handshakes costs).  Prints medians over the rounds and
# the ratios ours/original (below 1: ours is cheaper or faster).
set -eu
: "${ROOT:?}" "${PREFIX:?}" "${DC_BIN:?}" "${OUT:?}" "${ORIG:?}"
SRC=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5}
LIB=$ROOT$PREFIX/lib
[ -e "$ORIG/include/distcache/dc_client.h" ] || { echo "vsorig: no distcache installation at $ORIG"; exit 1; }
rm -rf "$OUT"; mkdir -p "$OUT"
CC=${CC:-cc}
$CC -O2 -Wall -Wextra -Werror -o "$OUT/ours" "$SRC/ctests/vsorig.c" \
	$(PKG_CONFIG_PATH=$LIB/pkgconfig PKG_CONFIG_SYSROOT_DIR=$ROOT pkg-config --cflags --libs distcache)
$CC -O2 -Wall -Wextra -o "$OUT/orig" "$SRC/ctests/vsorig.c" -I"$ORIG/include" \
	-L"$ORIG/lib" -Wl,-rpath,"$ORIG/lib" -ldistcache -lnal
pin=; command -v taskset >/dev/null && pin="taskset -c 0"

"$DC_BIN/dc_server" -listen "UNIX:$OUT/s.sock" -sessions 60000 >"$OUT/server.log" 2>&1 & srv=$!
psrv=
trap 'kill $srv $psrv 2>/dev/null' EXIT
if [ -n "$pin" ]; then
	# client and server on one CPU (the "pinned" case: no cross-CPU wake-ups)
	$pin "$DC_BIN/dc_server" -listen "UNIX:$OUT/p.sock" -sessions 60000 >"$OUT/pserver.log" 2>&1 & psrv=$!
fi
for s in s ${psrv:+p}; do
	i=0; while [ ! -S "$OUT/$s.sock" ]; do i=$((i + 1)); [ $i -gt 200 ] && { echo "vsorig: no server"; exit 1; }; sleep 0.05; done
done

r=1
while [ $r -le "$ROUNDS" ]; do
	for impl in ours orig; do
		if [ $impl = ours ]; then run="env LD_LIBRARY_PATH=$LIB"; else run=env; fi
		$run $pin "$OUT/$impl" objects "${OBJ_N:-200000}" | sed "s/^/$impl /" >>"$OUT/results"
		$run "$OUT/$impl" latency "UNIX:$OUT/s.sock" "${OPS:-2000}" | sed "s/^/$impl /" >>"$OUT/results"
		[ -z "$psrv" ] || $run $pin "$OUT/$impl" latency "UNIX:$OUT/p.sock" "${OPS:-2000}" |
			sed "s/^/$impl pinned:/" >>"$OUT/results"
		$run "$OUT/$impl" spaced "UNIX:$OUT/s.sock" "${SPACED_N:-300}" 2000 | sed "s/^/$impl /" >>"$OUT/results"
	done
	r=$((r + 1))
done
echo "C libraries vs $ORIG ($ROUNDS alternating rounds, medians; objects pinned: ${pin:-no};"
echo "latency against our dc_server, unix socket; pinned: client and server on one CPU;"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg))"
awk '
function med(k,   n, i, j, t, a) {
	n = split(vals[k], a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return a[int((n + 1) / 2)]
}
{ k = $2; if (!(k in unit)) { order[++nk] = k; unit[k] = $4 }; vals[$1 " " k] = vals[$1 " " k] " " $3 }
END {
	printf "%-48s %10s %10s %7s\n", "case", "ours", "original", "ratio"
	for (i = 1; i <= nk; i++) {
		k = order[i]; o = med("ours " k); g = med("orig " k)
		printf "%-48s %7.1f %-2s %7.1f %-2s %7.2f\n", k, o, unit[k], g, unit[k], (g > 0 ? o / g : 0)
	}
}' "$OUT/results"
