#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The C compatibility suite (make ctest-check).  Runs against the libraries
# installed into $ROOT (a scratch DESTDIR with prefix $PREFIX), compiling every
# program the way a consumer does: cc prog.c $(pkg-config --cflags --libs ...).
#
# Environment: ROOT PREFIX (install), DC_BIN (our tools), SRC (source tree),
# OUT (scratch dir), VALGRIND=1 (run the C-only programs under memcheck too),
# PANIC_ENGINE (the engine built with -tags distcache_panictest, for t_panic).
# Prints every check ("ok - ..." / "not ok - ...") and closes with
# "N passed, N failed"; exits non-zero on any failure.
set -u
: "${ROOT:?}" "${PREFIX:?}" "${DC_BIN:?}" "${SRC:=$(pwd)}" "${OUT:=/tmp/ctests.$$}"
T=$SRC/ctests
LIB=$ROOT$PREFIX/lib
export PKG_CONFIG_PATH=$LIB/pkgconfig PKG_CONFIG_SYSROOT_DIR=$ROOT
export LD_LIBRARY_PATH=$LIB
CC=${CC:-cc}
CFLAGS="-Wall -Wextra -Werror -O1 -g"
rm -rf "$OUT"; mkdir -p "$OUT"
pass=0 fail=0 pids=""

ok()  { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "not ok - $*"; }
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	if [ -n "${JAILP:-}" ]; then umount "$JAILP/proc" 2>/dev/null; fi
}
trap cleanup EXIT INT TERM

# wait_for FILE: poll (up to 10 s) until FILE exists.
wait_for() {
	i=0
	while [ ! -e "$1" ]; do
		i=$((i + 1)); [ $i -gt 200 ] && return 1
		sleep 0.05
	done
}

# run NAME TIMEOUT CMD...: run a test program, count its checks, fail it on
# a non-zero exit (a timeout is exit 124), on a missing plan line ("1..N",
# printed first), and when it printed a different number of checks than
# it planned (a program that stops early has run fewer).
run() {
	name=$1 tmo=$2; shift 2
	timeout -k 5 "$tmo" "$@" > "$OUT/$name.log" 2>"$OUT/$name.err"; rc=$?
	cat "$OUT/$name.log"
	p=$(grep -c '^ok - ' "$OUT/$name.log"); f=$(grep -c '^not ok - ' "$OUT/$name.log")
	pass=$((pass + p)); fail=$((fail + f))
	plan=$(sed -n '1s/^1\.\.\([0-9][0-9]*\)$/\1/p' "$OUT/$name.log")
	if [ -z "$plan" ]; then
		bad "$name: no plan (first line is not 1..N)"
	elif [ "$plan" -ne $((p + f)) ]; then
		bad "$name: planned $plan checks, ran $((p + f))"
	fi
	if [ $rc -ne 0 ]; then
		bad "$name exited with status $rc$( [ $rc -eq 124 ] && echo ' (timed out)')"
		sed 's/^/    stderr: /' "$OUT/$name.err" | tail -20
	fi
}

# compile NAME PKG [extra]: build ctests/NAME.c as a consumer would.
compile() {
	if $CC $CFLAGS -o "$OUT/$1" "$T/$1.c" ${3:-} $(pkg-config --cflags --libs $2) -lpthread 2>"$OUT/$1.cc"; then
		ok "compile $1.c with pkg-config $2"
	else
		bad "compile $1.c with pkg-config $2"; sed 's/^/    /' "$OUT/$1.cc"; return 1
	fi
}

echo "# installed tree: $ROOT$PREFIX"

# ---- pkg-config, sonames, links, exported symbols ----
[ "$(echo $(pkg-config --libs distcache))" = "-L$ROOT$PREFIX/lib -ldistcache -lnal" ] \
	&& ok "pkg-config --libs distcache = -L.. -ldistcache -lnal" \
	|| bad "pkg-config --libs distcache gave '$(pkg-config --libs distcache)'"
[ "$(echo $(pkg-config --libs distcacheserver))" = "-L$ROOT$PREFIX/lib -ldistcacheserver -ldistcache -lnal" ] \
	&& ok "pkg-config --libs distcacheserver" || bad "pkg-config --libs distcacheserver: '$(pkg-config --libs distcacheserver)'"
[ "$(echo $(pkg-config --cflags libnal))" = "-I$ROOT$PREFIX/include" ] && ok "pkg-config --cflags libnal" \
	|| bad "pkg-config --cflags libnal: '$(pkg-config --cflags libnal)'"
inc=$ROOT$PREFIX/include
for lib in nal:libnal/nal.h: distcache:distcache/dc_plug.h+distcache/dc_client.h:libnal.so.1 \
	   distcacheserver:distcache/dc_server.h:libnal.so.1; do
	l=${lib%%:*} rest=${lib#*:} hdrs=${rest%%:*} needs=${rest#*:}
	f=$LIB/lib$l.so.1.0.1
	[ -f "$f" ] && [ "$(readlink "$LIB/lib$l.so.1")" = "lib$l.so.1.0.1" ] && [ "$(readlink "$LIB/lib$l.so")" = "lib$l.so.1" ] \
		&& ok "lib$l.so.1.0.1 installed with links lib$l.so.1 and lib$l.so" || bad "lib$l files/links"
	son=$(readelf -d "$f" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
	[ "$son" = "lib$l.so.1" ] && ok "SONAME of lib$l is lib$l.so.1" || bad "SONAME of lib$l is '$son'"
	need=$(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -v '^libc\.so' | grep -v '^libasan' | sort | tr '\n' '+' | sed 's/+$//')
	want=$(echo "$needs" | tr '+' '\n' | grep . | sort | tr '\n' '+' | sed 's/+$//')
	[ "$need" = "$want" ] && ok "NEEDED of lib$l: ${need:-libc only}" || bad "NEEDED of lib$l: '$need', want '$want'"
	# the functions the headers declare, as the compiler sees them
	: > "$OUT/$l.want"
	for h in $(echo "$hdrs" | tr '+' ' '); do
		printf '#include <%s>\n' "$h" > "$OUT/aux.c"
		$CC $(pkg-config --cflags libnal) -aux-info "$OUT/aux.txt" -c "$OUT/aux.c" -o /dev/null
		grep "/$h:" "$OUT/aux.txt" | grep -o '\b\(NAL\|DC\)_[A-Za-z0-9_]* (' | tr -d ' (' >> "$OUT/$l.want"
	done
	sort -u -o "$OUT/$l.want" "$OUT/$l.want"
	# beyond the headers: libnal's private rendezvous symbol and its version
	# node (DISTCACHE_GO_FRONT_N), nothing else
	nm -D --defined-only "$f" | awk '{print $3}' | sort -u > "$OUT/$l.all"
	grep -v '^DISTCACHE_GO_FRONT_[0-9]*$\|^dcf_front_shared@@DISTCACHE_GO_FRONT_[0-9]*$' "$OUT/$l.all" > "$OUT/$l.have"
	priv=$(grep -c '^DISTCACHE_GO_FRONT_[0-9]*$\|^dcf_front_shared@@DISTCACHE_GO_FRONT_[0-9]*$' "$OUT/$l.all")
	if [ $l = nal ]; then
		[ "$priv" = 2 ] && ok "libnal's one private symbol: dcf_front_shared in version node $(grep '^DISTCACHE' "$OUT/$l.all")" \
			|| bad "libnal's private symbol: $(grep 'DISTCACHE_GO\|dcf_' "$OUT/$l.all" | tr '\n' ' ')"
		pv=$(sed -n 's/^#define DCF_SHARED_VERSION \([0-9][0-9]*\)$/\1/p' "$SRC/capi/front/engine.h")
	else
		[ "$priv" = 0 ] && nm -D "$f" | grep -q " U dcf_front_shared@DISTCACHE_GO_FRONT_$pv\$" \
			&& ok "lib$l binds libnal's dcf_front_shared in node DISTCACHE_GO_FRONT_$pv and exports nothing private" \
			|| bad "lib$l: private symbols $(grep 'DISTCACHE_GO\|dcf_' "$OUT/$l.all" | tr '\n' ' '); $(nm -D "$f" | grep dcf_)"
	fi
	if cmp -s "$OUT/$l.want" "$OUT/$l.have"; then
		ok "lib$l exports exactly the $(wc -l < "$OUT/$l.want") functions of $(echo "$hdrs" | tr '+' ' ')"
	else
		bad "lib$l exported symbols differ from the header's functions:"; diff "$OUT/$l.want" "$OUT/$l.have" | sed 's/^/    /'
	fi
done
# every public function is called by some test program
missing=$(cat "$OUT"/*.want | sort -u | while read -r fn; do grep -qw "$fn" "$T"/t_*.c "$T"/cserver.c || echo "$fn"; done)
[ -z "$missing" ] && ok "every one of the $(cat "$OUT"/*.want | sort -u | wc -l) public functions is called by a test program" \
	|| bad "functions no test calls: $missing"
abi=$(sed -n 's/^#define DCF_ENGINE_ABI \([0-9][0-9]*\)$/\1/p' "$SRC/capi/front/engine.h")
ENGINE=$LIB/distcache/libdistcache-engine-$abi.so
[ -n "$abi" ] && [ -f "$ENGINE" ] && [ "$(ls "$LIB/distcache")" = "libdistcache-engine-$abi.so" ] \
	&& ok "engine installed as \$libdir/distcache/libdistcache-engine-$abi.so (its interface version), alone" \
	|| bad "engine not in $LIB/distcache as libdistcache-engine-$abi.so: $(ls "$LIB/distcache")"
perms=$(cd "$LIB" && stat -c '%a %n' lib*.so.1.0.1 distcache/*.so | grep -v '^644 ' || true)
[ -z "$perms" ] && ok "libraries and engine installed 0644" || bad "installed with other modes: $perms"

# ---- headers: C89, C99, C++, standalone ----
for h in libnal/nal.h distcache/dc_plug.h distcache/dc_client.h distcache/dc_server.h; do
	printf '#include <%s>\nint x;\n' "$h" > "$OUT/h.c"
	$CC -std=c89 -pedantic -Wall -Wextra -Werror -fsyntax-only $(pkg-config --cflags libnal) "$OUT/h.c" 2>"$OUT/h.err" \
		&& ok "<$h> compiles alone as C89" || { bad "<$h> as C89"; cat "$OUT/h.err"; }
	if command -v c++ >/dev/null; then
		c++ -x c++ -Wall -Wextra -Werror -fsyntax-only $(pkg-config --cflags libnal) "$OUT/h.c" 2>"$OUT/h.err" \
			&& ok "<$h> compiles alone as C++" || { bad "<$h> as C++"; cat "$OUT/h.err"; }
	fi
done

# ---- httpd's configure check ----
if $CC -o "$OUT/t_configure" "$T/t_configure.c" $(pkg-config --cflags distcache) \
	$(pkg-config --libs-only-L distcache) -ldistcache -lnal 2>"$OUT/cfg.err"; then
	ok "httpd configure check: DISTCACHE_CLIENT_API == 0x0001 and -ldistcache -lnal links DC_CTX_new"
	run t_configure 30 "$OUT/t_configure"
else
	bad "httpd configure check"; cat "$OUT/cfg.err"
fi

# ---- programs ----
compile cserver distcache || true
compile t_ctx distcache || true
compile t_addr distcache || true
compile t_fork distcache || true
compile t_threads distcache || true
compile t_nal libnal || true
compile t_plug distcache || true
compile t_noengine distcacheserver || true
compile t_server distcacheserver || true
compile t_garbage distcacheserver || true
compile t_forkobj distcacheserver || true
compile t_forkcache distcacheserver || true
compile t_panic distcacheserver || true
compile t_chroot distcache || true
compile t_stall distcache || true
compile t_fast distcache || true
compile t_nearmap distcache || true
compile t_sigpipe distcache || true
compile failvals_gen distcacheserver || true

# The server: our dc_server, else the C server built on our own ABI.
S=$OUT/server.sock C=$OUT/client.sock
if [ -x "$DC_BIN/dc_server" ]; then
	"$DC_BIN/dc_server" -listen "UNIX:$S" -sessions 60000 >"$OUT/dc_server.log" 2>&1 & pids="$pids $!"
	what="dc_server"
else
	"$OUT/cserver" "UNIX:$S" >"$OUT/cserver.log" 2>&1 & pids="$pids $!"
	what="ctests/cserver (build/bin/dc_server not built)"
fi
wait_for "$S" && ok "server up: $what" || bad "server did not come up: $what"
if [ -x "$DC_BIN/dc_client" ]; then
	"$DC_BIN/dc_client" -listen "UNIX:$C" -server "UNIX:$S" >"$OUT/dc_client.log" 2>&1 & pids="$pids $!"
	wait_for "$C" && ok "dc_client proxy up" || bad "dc_client did not come up"
fi

run t_noengine 60 "$OUT/t_noengine"
# failvals_gen.c (generated from capi/front/api.tab): every function's
# failure value without an engine (one line says so), and for NULL objects
DISTCACHE_ENGINE=$OUT/no-such-engine.so run failvals_noengine 60 "$OUT/failvals_gen" noengine
[ "$(grep -c '^distcache: cannot load the engine: ' "$OUT/failvals_noengine.err")" = 1 ] \
	&& ok "failvals_noengine: one line says the engine cannot be loaded" \
	|| { bad "failvals_noengine: want one line on stderr:"; sed 's/^/    /' "$OUT/failvals_noengine.err" | head -5; }
run failvals_engine 60 "$OUT/failvals_gen" engine
[ -x "$DC_BIN/dc_server" ] && run t_addr 120 "$OUT/t_addr" "$SRC/goimpl/nal/testdata/addresses.txt" "$DC_BIN/dc_server"
run t_ctx 120 "$OUT/t_ctx" "UNIX:$S" server
[ -e "$C" ] && run t_ctx_proxy 120 "$OUT/t_ctx" "UNIX:$C" via-dc_client
DISTCACHE_CTX=client run t_ctx_goclient 120 "$OUT/t_ctx" "UNIX:$S" net-transport
# t_fork and t_threads check that no answer is lost or mixed up among many
# concurrent callers, not the bound on one operation (t_stall does): under
# ASan on a loaded two-core machine a caller can be off the CPU for longer
# than the 100 ms default, which would count as a lost answer here.
run t_fork 240 env DISTCACHE_TIMEOUT_MS=2000 "$OUT/t_fork" "UNIX:$S"
run t_threads 240 env DISTCACHE_TIMEOUT_MS=2000 "$OUT/t_threads" "UNIX:$S"
run t_nal 60 "$OUT/t_nal" "$OUT"
run t_plug 60 "$OUT/t_plug" "$OUT"
run t_server 60 "$OUT/t_server"
run t_garbage 60 "$OUT/t_garbage"
run t_forkobj 240 "$OUT/t_forkobj" "$OUT"
run t_forkcache 240 "$OUT/t_forkcache"
run t_sigpipe 60 "$OUT/t_sigpipe"
if [ -x "$DC_BIN/dc_server" ] && [ -x "$DC_BIN/dc_client" ]; then
	run t_stall 120 "$OUT/t_stall" "$DC_BIN" "$OUT"
else
	bad "t_stall needs dc_server and dc_client in $DC_BIN"
fi
if [ -x "$DC_BIN/dc_server" ]; then
	run t_fast 120 "$OUT/t_fast" "$DC_BIN" "$OUT"
else
	bad "t_fast needs dc_server in $DC_BIN"
fi
if [ -x "$DC_BIN/dc_server" ] && [ -x "$DC_BIN/dc_client" ]; then
	run t_nearmap 120 "$OUT/t_nearmap" "$DC_BIN" "$OUT"
else
	bad "t_nearmap needs dc_server and dc_client in $DC_BIN"
fi
if [ -n "${PANIC_ENGINE:-}" ] && [ -f "$PANIC_ENGINE" ]; then
	DISTCACHE_ENGINE=$PANIC_ENGINE run t_panic 60 "$OUT/t_panic" "$OUT" "UNIX:$S"
else
	bad "t_panic: no test engine (PANIC_ENGINE=${PANIC_ENGINE:-unset}; make capi-panic-engine)"
fi

# An engine of another release (its interface text differs) is refused
# with one line, and the calls fail cleanly.
printf 'const char *dce_abi(void) { return "abi 0: another interface"; }\nconst char *dce_engine_version(void) { return "0.9.9"; }\n' >"$OUT/other.c"
if $CC -shared -fPIC -o "$OUT/libdistcache-engine-other.so" "$OUT/other.c" 2>"$OUT/other.cc"; then
	DISTCACHE_ENGINE=$OUT/libdistcache-engine-other.so "$OUT/t_ctx" "UNIX:$S" other >/dev/null 2>"$OUT/other.err"
	n=$(grep -c '^distcache: cannot load the engine: .*libdistcache-engine-other.so is the engine of another release (0.9.9), this library is .*: install the libraries and the engine of one release$' "$OUT/other.err")
	[ "$n" = 1 ] && [ "$(grep -c . "$OUT/other.err")" = 1 ] && ok "an engine of another release is refused with one line" \
		|| { bad "engine of another release: want one refusal line, got:"; sed 's/^/    /' "$OUT/other.err" | head -5; }
else
	bad "cannot build the fake engine"; cat "$OUT/other.cc"
fi

# chroot: before the first call, and in a child of a parent that used the
# library, with and without /proc in the jail (each jail holds a dc_server
# socket and nothing else).  Needs root; under DISTCACHE_REQUIRE_E2E=1 (CI)
# a skip is a failure.
if [ "$(id -u)" = 0 ]; then
	JAIL=$OUT/jail JAILP=$OUT/jailp
	mkdir -p "$JAIL" "$JAILP/proc"
	for j in "$JAIL" "$JAILP"; do
		"$DC_BIN/dc_server" -listen "UNIX:$j/dc.sock" >"$j.server.log" 2>&1 & pids="$pids $!"
		wait_for "$j/dc.sock" || bad "dc_server in $j did not come up"
	done
	if mount -t proc proc "$JAILP/proc"; then
		run t_chroot_before 60 "$OUT/t_chroot" before "$JAIL"
		run t_chroot_child 60 "$OUT/t_chroot" child "$JAILP" works
		run t_chroot_noproc 60 "$OUT/t_chroot" child "$JAIL" remedy
		umount "$JAILP/proc"
	else
		bad "mount -t proc in $JAILP/proc failed"
	fi
	JAILP=
elif [ "${DISTCACHE_REQUIRE_E2E:-0}" = 1 ]; then
	bad "t_chroot needs root (DISTCACHE_REQUIRE_E2E=1: a skipped test is a failure)"
else
	echo "# SKIP t_chroot: needs root"
fi

if [ "${VALGRIND:-0}" = 1 ] && command -v valgrind >/dev/null; then
	# The Go engine is not valgrind-clean by design (its own allocator, signal-
	# driven preemption); memcheck covers the front's C code paths that run
	# without the engine, and the codec.
	run t_noengine_vg 300 valgrind -q --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite "$OUT/t_noengine"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
