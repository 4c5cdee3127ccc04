#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Apache httpd end-to-end test: two Apache instances share TLS sessions
# through the unmodified mod_socache_dc, our libdistcache/libnal, one
# dc_client per instance and one dc_server.  See tests/apache/README.md.
#
# Usage: tests/apache/run.sh            (make apache-check runs it)
# Environment:
#   DC_BIN            built tools (default build/bin)
#   APACHE_MPMS       MPMs to test (default "prefork event"; also "worker")
#   APACHE_LOAD_N     handshakes per load run (default 3000)
#   APACHE_STARTS     start/stop cycles with varied paths (default 50)
#   APACHE_KEEP=1     keep the temporary directory
#   APACHE_DC_PREFIX  test the libraries installed there instead of ours
#   APACHE_DC_SYSTEM=1 test the libraries installed system-wide (the Debian
#                     packages, make deb-check): headers in /usr/include,
#                     libraries found by the dynamic linker; with DC_BIN=/usr/bin
#   APACHE_REDIS=0    skip the runs with the sessions in Redis (Sentinel);
#                     APACHE_REDIS=only runs nothing else; APACHE_REDIS=bench
#                     runs only the side-by-side benchmark of session caches
#                     (make bench-socache): APACHE_BENCH_PARTS="resume farm
#                     failover"; resume: APACHE_RESUME_SECS, APACHE_RESUME_ROUNDS,
#                     APACHE_RESUME_MPMS, APACHE_ORIG, APACHE_RESUME_ALT,
#                     APACHE_RESUME_ONLY; farm: APACHE_FARM_MPMS,
#                     APACHE_FARM_SECS, APACHE_FARM_ROUNDS, APACHE_FARM_CONC,
#                     APACHE_FARM_CHAIN; failover:
#                     APACHE_BENCH_N handshakes a run
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
BIN=${DC_BIN:-$BUILD/bin}
MPMS=${APACHE_MPMS:-prefork event}
LOAD_N=${APACHE_LOAD_N:-3000}
# The stall (both dc_clients stopped from a quarter to three quarters of a
# load) needs a load long enough for the stop and the continue, each a
# command of its own, to come while it runs: at least 3000 handshakes,
# which the near cache makes take about a second (600 took 0.3 s, and
# the stall ended before a context had gone on probation).
STALL_N=$((LOAD_N < 3000 ? 3000 : LOAD_N))
STARTS=${APACHE_STARTS:-50}
CONC=16
SN=dc-test.invalid     # the one ServerName of both instances
RETRY_MS=1000          # dc_client -retry
# The cache tier runs mutual TLS (dc_client A and B with their own client
# certificates) with sealed sessions; APACHE_DC_SECURE=0 runs it in the
# clear (for dc_server/dc_client builds without TLS, such as 1.5's).
SECURE=${APACHE_DC_SECURE:-1}
LOW_GOGC=5             # GOGC given to Apache and so to its children

say() { printf 'apache-check: %s\n' "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }
# The daemons the tests start (dc_server, dc_client) each run in a
# session of their own, as a daemon does (dc_server -daemon, Apache,
# redis-server --daemonize, memcached -d): with the kernel's autogroups
# (sched_autogroup_enabled) a session shares one CPU share, so a daemon
# left in this script's session would share it with the load driver
# (openssl s_time, loadgen) and, on a busy machine, wait behind it where
# the other stores do not. A background command of this (non-interactive)
# shell is no process group leader: setsid(1) then execs the daemon
# itself, so $! stays its pid. Only for "own_session CMD ... &".
own_session() { exec setsid "$@"; }
# own_sessions PID...: each of them leads a session of its own
own_sessions() {
	local p
	for p in "$@"; do [ "$(ps -o sid= -p "$p" | tr -d ' ')" = "$p" ] || return 1; done
}

# ---------------------------------------------------------------- prerequisites
APACHE2=$(command -v apache2 || true)
APXS=$(command -v apxs || command -v apxs2 || true)
if [ -z "$APACHE2" ] || [ -z "$APXS" ]; then
	say "SKIPPED: apache2 and apxs are not installed" \
	    "(apt-get install $(sed 's/#.*//' "$ROOT/.ci/packages.d/apache.txt" | tr -s ' \n' ' '))"
	# CI installs them: there a skip would hide a broken package list.
	[ -z "${DISTCACHE_REQUIRE_E2E:-}" ] || exit 1
	exit 0
fi
for t in openssl curl gcc pgrep; do
	command -v $t >/dev/null || die "$t is not installed (see .ci/packages.d/apache.txt)"
done
for t in dc_server dc_client; do
	[ -x "$BIN/$t" ] || die "$BIN/$t is missing: run make first"
done
MODDIR=$("$APXS" -q LIBEXECDIR)
id www-data >/dev/null 2>&1 || die "user www-data is missing"
[ "$(id -u)" = 0 ] || die "must run as root (Apache drops to www-data)"

T=$(mktemp -d /tmp/dc-apache.XXXXXX)
chmod 755 "$T"
PIDS=()        # our background processes (dc_server, dc_client)
INSTANCES=()   # Apache instances started (names)
cleanup() {
	set +e
	for i in "${INSTANCES[@]}"; do stop_apache "$i" >/dev/null 2>&1; done
	[ -s "$T/dc_server.pid" ] && "$T/ctl" dc-stop 2>/dev/null
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	for d in "$T"/redis-*/; do [ -d "$d" ] && "$ROOT/tests/redis/sentinel.sh" stop "$d"; done
	# the benchmark's stores (daemons, on fixed ports) when it stopped
	# before stopping them
	local f sp
	for f in redis-server:"$T/bench-redis/pid" memcached:"$T/bench-redis/memcached/pid"; do
		sp=$(cat "${f#*:}" 2>/dev/null)
		[ -n "$sp" ] && [ "$(cat "/proc/$sp/comm" 2>/dev/null)" = "${f%%:*}" ] && kill "$sp"
	done
	if [ "${APACHE_KEEP:-0}" = 1 ]; then say "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

# wait_until SECS CMD...: poll CMD until it succeeds, at most SECS seconds.
wait_until() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.05
	done
}

PASSED=0
FAILED=0
FAILURES=()
check() { # check NAME CMD...: one test result
	local name=$1 rc=0
	shift
	# what the check prints is kept, so that the summary at the end (the
	# part of a long log one reads first) can repeat why a check failed
	"$@" >"$T/check.out" 2>&1 || rc=$?
	cat "$T/check.out"
	if [ $rc = 0 ]; then
		PASSED=$((PASSED + 1))
		say "PASS $name"
	else
		FAILED=$((FAILED + 1))
		FAILURES+=("$name")
		cp "$T/check.out" "$T/failed-$FAILED.out"
		say "FAIL $name"
	fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000)) # below the ephemeral range
		# not one the Redis Sentinel group takes later (run_redis:
		# tests/redis/sentinel.sh within 26700-26999): an Apache
		# instance given 26700 while it was free failed to start there
		[ "$p" -ge 26700 ] && [ "$p" -le 26999 ] && continue
		port_open $p || { echo $p; return; }
	done
}

# ---------------------------------------------------------------- build
say "building in $T"

# 1. our libraries into a temporary prefix
PREFIX=$T/prefix
LIBS_SYSTEM=
if [ -n "${APACHE_DC_SYSTEM:-}" ]; then
	# installed packages: nothing to install, nothing to add to the paths
	PREFIX=/usr
	LIBS_SYSTEM=1
	say "libraries installed system-wide"
elif [ -n "${APACHE_DC_PREFIX:-}" ]; then
	# another distcache installation (e.g. the original, for comparison)
	PREFIX=$APACHE_DC_PREFIX
	say "libraries from $PREFIX"
else
	"${MAKE:-make}" -C "$ROOT" --no-print-directory install PREFIX="$PREFIX" \
		>"$T/install.log" 2>&1 || { cat "$T/install.log"; die "make install failed"; }
fi
if [ -n "$LIBS_SYSTEM" ]; then
	[ -e /usr/include/distcache/dc_client.h ] || die "/usr/include/distcache/dc_client.h is not installed"
	for l in libdistcache.so.1 libnal.so.1; do
		ldconfig -p | grep "^[[:space:]]*$l " >/dev/null || die "$l is not installed system-wide (ldconfig -p)"
	done
else
	for f in include/distcache/dc_client.h lib/libdistcache.so.1 lib/libnal.so.1; do
		[ -e "$PREFIX/$f" ] || die "make install did not install $f"
	done
fi

# 2. mod_socache_dc.c from Debian's apache2 source package (not committed)
SRC=$BUILD/apache-src
modc=$(ls "$SRC"/apache2-2.4.*/modules/cache/mod_socache_dc.c 2>/dev/null | head -1 || true)
if [ -z "$modc" ]; then
	rm -rf "$SRC"
	mkdir -p "$SRC"
	(cd "$SRC" && { apt-get source apache2 || apt-get source apache2/bookworm; }) \
		>"$T/apt-source.log" 2>&1 ||
		{ cat "$T/apt-source.log"; die "apt-get source apache2 failed (deb-src entry: .ci/setup.d/apache.sh)"; }
	modc=$(ls "$SRC"/apache2-2.4.*/modules/cache/mod_socache_dc.c | head -1)
fi
say "module source: ${modc#"$SRC"/}"
mkdir -p "$T/mod"
cp "$modc" "$T/mod/mod_socache_dc.c" # unmodified; apxs builds next to it
(cd "$T/mod" && "$APXS" -c -I"$PREFIX/include" -L"$PREFIX/lib" \
	-ldistcache -lnal mod_socache_dc.c) \
	>"$T/apxs.log" 2>&1 || { cat "$T/apxs.log"; die "apxs failed"; }
MODSO=$T/mod/.libs/mod_socache_dc.so
[ -f "$MODSO" ] || die "apxs built no $MODSO"
readelf -d "$MODSO" | grep 'NEEDED.*libdistcache\.so\.1' >/dev/null || die "$MODSO does not link libdistcache.so.1"
# Apache finds the libraries as if they were installed system-wide (apxs'
# libtool drops -Wl,-rpath, and ldconfig is not for a temporary prefix).
[ -n "$LIBS_SYSTEM" ] || export LD_LIBRARY_PATH=$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# 3. the load driver
gcc -O2 -Wall -Wextra -Werror -o "$T/loadgen" "$ROOT/tests/apache/loadgen.c" \
	-lssl -lcrypto -pthread || die "cannot build loadgen"

# 4. a throwaway certificate
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-subj "/CN=$SN" -addext basicConstraints=critical,CA:FALSE -days 2 -keyout "$T/key.pem" -out "$T/cert.pem" \
	>"$T/openssl-req.log" 2>&1 || { cat "$T/openssl-req.log"; die "openssl req failed"; }
mkdir -p "$T/htdocs"
echo "hello from distcache-go" >"$T/htdocs/index.html"

# 5. the cache tier's PKI: a CA, dc_server's certificate, one client
# certificate per dc_client, and the sealing key shared by the dc_clients
if [ "$SECURE" = 1 ]; then
	mkdir -p "$T/pki"
	(
		cd "$T/pki" || exit 1
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=cache tier CA" \
			-addext basicConstraints=critical,CA:TRUE -days 2 -keyout ca.key -out ca.crt || exit 1
		for n in server A B; do
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=dc-$n" \
				-keyout $n.key -out $n.csr || exit 1
			if [ $n = server ]; then
				ext="subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
			else
				ext="extendedKeyUsage=clientAuth"
			fi
			openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
				-extfile <(echo "$ext") -out $n.crt || exit 1
		done
		printf 'k1 %s\n' "$(openssl rand -hex 32)" >seal.keys
		chmod 600 ./*.key seal.keys
	) >"$T/openssl-pki.log" 2>&1 || { cat "$T/openssl-pki.log"; die "making the cache tier's certificates failed"; }
	DCS_TLS="-tlscert $T/pki/server.crt -tlskey $T/pki/server.key -tlsca $T/pki/ca.crt"
fi
dcc_tls() { # dcc_tls NAME: dc_client's TLS and sealing options
	[ "$SECURE" = 1 ] && echo "-tlsca $T/pki/ca.crt -tlsname localhost -tlscert $T/pki/$1.crt -tlskey $T/pki/$1.key -sealkey $T/pki/seal.keys"
}

# ---------------------------------------------------------------- cache tier
# $T/ctl is a small generated helper, so that the load driver's -at
# actions can stop and start dc_server or restart Apache mid-run.
DC_PORT=$(free_port)
cat >"$T/ctl" <<EOF
#!/bin/bash
# generated by tests/apache/run.sh
alive() { [ -r /proc/\$1/stat ] && [ "\$(awk '{print \$3}' /proc/\$1/stat 2>/dev/null)" != Z ]; }
case \$1 in
dc-start)
	setsid "$BIN/dc_server" -listen IP:127.0.0.1:$DC_PORT -sessions 20000 ${DCS_TLS:-} \\
		-pidfile "$T/dc_server.pid" >>"$T/dc_server.log" 2>&1 </dev/null &
	echo \$! >"$T/dc_server.pid"
	for i in \$(seq 200); do
		(exec 3<>/dev/tcp/127.0.0.1/$DC_PORT) 2>/dev/null && exit 0
		sleep 0.05
	done
	echo "dc_server does not listen on $DC_PORT" >&2; exit 1 ;;
dc-stop)
	pid=\$(cat "$T/dc_server.pid")
	kill \$pid
	for i in \$(seq 200); do alive \$pid || exit 0; sleep 0.05; done
	echo "dc_server \$pid did not stop: killing it" >&2; kill -9 \$pid; exit 1 ;;
dcc-stop | dcc-cont)
	# stop (SIGSTOP) or continue a dc_client: a stalled cache
	kill -\$([ \$1 = dcc-stop ] && echo STOP || echo CONT) \$(cat "$T/dc_client-\$2.pid") ;;
dc-reexec)
	# SIGTTIN: the successor rewrites the pid file, the old one exits
	old=\$(cat "$T/dc_server.pid")
	kill -TTIN \$old
	for i in \$(seq 600); do
		new=\$(cat "$T/dc_server.pid" 2>/dev/null)
		[ -n "\$new" ] && [ "\$new" != \$old ] && ! alive \$old && exit 0
		sleep 0.05
	done
	echo "dc_server \$old did not re-execute" >&2; exit 1 ;;
graceful)
	# remember when (seconds since boot) for the every-worker check
	awk '{print \$1}' /proc/uptime >"$T/\$2/graceful.uptime"
	APACHE_CONFDIR="$T/\$2" APACHE_ENVVARS=/dev/null \\
		APACHE_ARGUMENTS="-f $T/\$2/httpd.conf" exec apachectl graceful ;;
*) echo "usage: ctl dc-start|dc-stop|dc-reexec|dcc-stop NAME|dcc-cont NAME|graceful NAME" >&2; exit 2 ;;
esac
EOF
chmod 755 "$T/ctl"
# phase_log FILE: a daemon's log per MPM phase (the earlier phases' lines
# kept in FILE.old): the last phase's stalls and outages rightly leave
# refusals and lost servers (a handshake cut by SIGSTOP times out) that
# tier_secure must not take for this phase's
phase_log() {
	[ ! -f "$1" ] || cat "$1" >>"$1.old"
	: >"$1"
}
start_dc_server() {
	phase_log "$T/dc_server.log"
	"$T/ctl" dc-start || die "cannot start dc_server"
}
stop_dc_server() { "$T/ctl" dc-stop; }
start_dc_client() { # start_dc_client NAME
	local sock=$T/$1.sock mopt=
	rm -f "$sock"
	if [ -n "$DCC_MAP" ]; then
		# its request counters, for map_reads (not on a port an Apache
		# instance is about to take)
		local mp
		mp=$(free_port)
		while [ "$mp" = "${PORT[A]:-}" ] || [ "$mp" = "${PORT[B]:-}" ]; do mp=$(free_port); done
		echo "$mp" >"$T/dc_client-$1.mport"
		mopt="-metrics IP:127.0.0.1:$(cat "$T/dc_client-$1.mport")"
	fi
	phase_log "$T/dc_client-$1.log"
	# shellcheck disable=SC2086
	own_session "$BIN/dc_client" -listen "UNIX:$sock" -server "IP:127.0.0.1:$DC_PORT" \
		-retry $RETRY_MS -sockgroup www-data -sockperms 0660 $(dcc_tls "$1") $DCC_MAP $mopt \
		>>"$T/dc_client-$1.log" 2>&1 &
	PIDS+=("$!")
	echo $! >"$T/dc_client-$1.pid"
	wait_until 10 test -S "$sock" || die "dc_client $1 made no socket $sock"
}

DCC_MAP= # -nearmap for the event MPM's run (run_mpm)
# dcc_gets NAME: the GETs dc_client NAME has answered (its -metrics)
dcc_gets() {
	local port
	port=$(cat "$T/dc_client-$1.mport")
	exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
	printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
	awk '/^distcache_requests_total\{op="get"/ { n += $NF } END { print n + 0 }' <&3
	exec 3<&-
}
# map_reads FROM TO: a session made on FROM and resumed on TO (TO's
# dc_client reads it from dc_server and keeps it) is resumed on TO ten
# times more while TO's dc_client answers no GET: read from its map
map_reads() {
	local f=$T/sess-map.pem g0 g1 i
	rm -f "$f"
	s_client out "$f" "${PORT[$1]}" 1.2
	s_client in "$f" "${PORT[$2]}" 1.2
	grep -q '^Reused, TLSv' "$T/sc.out" || return 1
	g0=$(dcc_gets "$2") || return 1
	for i in $(seq 10); do
		s_client in "$f" "${PORT[$2]}" 1.2
		grep -q '^Reused, TLSv' "$T/sc.out" || return 1
	done
	g1=$(dcc_gets "$2") || return 1
	say "dc_client $2 answered $((g1 - g0)) GETs for 10 resumptions"
	# a child that had not asked for the map yet takes one round trip
	[ $((g1 - g0)) -le "$(procs event)" ]
}

# ---------------------------------------------------------------- Apache
# write_conf NAME PORT MPM CACHE: an instance under $T/NAME
write_conf() {
	local name=$1 port=$2 mpm=$3 cache=$4 d=$T/$1 mpmconf
	mkdir -p "$d"
	case $mpm in
	prefork) mpmconf="StartServers 8
MinSpareServers 8
MaxSpareServers 8
ServerLimit 16
MaxRequestWorkers 8
MaxConnectionsPerChild 0" ;;
	event | worker) mpmconf="StartServers 2
ServerLimit 4
ThreadsPerChild 16
MaxRequestWorkers 32
MinSpareThreads 16
MaxSpareThreads 64
MaxConnectionsPerChild 0" ;;
	esac
	cat >"$d/httpd.conf" <<EOF
ServerRoot "$d"
PidFile "$d/httpd.pid"
ServerName $SN
Listen 127.0.0.1:$port
User www-data
Group www-data
Timeout 30
Mutex file:$d default
ErrorLog "$d/error.log"
LogLevel warn
LoadModule mpm_${mpm}_module $MODDIR/mod_mpm_$mpm.so
$mpmconf
LoadModule authz_core_module $MODDIR/mod_authz_core.so
LoadModule authz_host_module $MODDIR/mod_authz_host.so
LoadModule dir_module $MODDIR/mod_dir.so
LoadModule status_module $MODDIR/mod_status.so
LoadModule socache_shmcb_module $MODDIR/mod_socache_shmcb.so
LoadModule socache_dc_module $MODSO
$( [ -f "$MODDIR/mod_socache_redis.so" ] && echo "LoadModule socache_redis_module $MODDIR/mod_socache_redis.so" )
$( [ -f "$MODDIR/mod_socache_memcache.so" ] && echo "LoadModule socache_memcache_module $MODDIR/mod_socache_memcache.so" )
LoadModule ssl_module $MODDIR/mod_ssl.so
LogFormat "%P %{tid}P %{SSL_PROTOCOL}x %{SSL_SESSION_RESUMED}x %>s %U%q" dctest
CustomLog "$d/access.log" dctest
DocumentRoot "$T/htdocs"
DirectoryIndex index.html
<Directory "$T/htdocs">
    Require all granted
</Directory>
ExtendedStatus On
<Location /server-status>
    SetHandler server-status
    Require ip 127.0.0.1
</Location>
SSLEngine on
SSLCertificateFile "$T/cert.pem"
SSLCertificateKeyFile "$T/key.pem"
SSLProtocol -all +TLSv1.2 +TLSv1.3
SSLSessionTickets off
SSLSessionCacheTimeout 300
SSLSessionCache $cache
EOF
}

https_ok() { # https_ok PORT
	[ "$(curl -sk --max-time 5 -o /dev/null -w '%{http_code}' \
		--resolve "$SN:$1:127.0.0.1" "https://$SN:$1/")" = 200 ]
}
apache_pid() { cat "$T/$1/httpd.pid" 2>/dev/null; }
# alive PID: the process exists and is not a zombie
pid_alive() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
none_alive() { local p; for p in "$@"; do ! pid_alive "$p" || return 1; done; }
children() { pgrep -P "$(apache_pid "$1")" | sort -n; }

declare -A PORT
start_apache() { # start_apache NAME
	local d=$T/$1
	rm -f "$d/httpd.pid" "$d/graceful.uptime"
	# shellcheck disable=SC2086
	env GOGC=$LOW_GOGC ${APACHE_ENV:-} "$APACHE2" -f "$d/httpd.conf" -k start >>"$d/start.log" 2>&1 ||
		{ cat "$d/start.log" "$d/error.log" 2>/dev/null; die "apache $1 did not start"; }
	INSTANCES+=("$1")
	wait_until 20 https_ok "${PORT[$1]}" ||
		{ cat "$d/error.log"; die "apache $1 does not answer on ${PORT[$1]}"; }
}
stop_apache() { # stop_apache NAME
	local d=$T/$1 pid kids
	pid=$(apache_pid "$1")
	pid_alive "$pid" || return 0
	kids=$(pgrep -P "$pid" || true)
	"$APACHE2" -f "$d/httpd.conf" -k stop >/dev/null 2>&1 || true
	if ! wait_until 30 none_alive "$pid"; then
		say "apache $1 did not stop: killing $pid $kids"
		kill -9 "$pid" $kids 2>/dev/null || true
	fi
	local live
	for k in $kids; do pid_alive "$k" && live="${live:-} $k"; done
	if [ -n "${live:-}" ]; then
		wait_until 10 none_alive $live || kill -9 $live 2>/dev/null || true
	fi
	INSTANCES=("${INSTANCES[@]/$1/}")
}

# ---------------------------------------------------------------- checks
# s_client_sess OUT|IN FILE PORT VERSION: one connection, output in $T/sc.out
s_client() {
	local mode=$1 file=$2 port=$3 ver=$4
	printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$SN" |
		timeout 20 openssl s_client -connect "127.0.0.1:$port" -servername "$SN" \
			"-tls${ver/./_}" "-sess_${mode}" "$file" -ign_eof >"$T/sc.out" 2>&1 || true
}
# resumes FROM TO VERSION WAIT: a session made on FROM, resumed on TO after WAIT s
resumes() {
	local f=$T/sess-$1-$3.pem
	rm -f "$f"
	s_client out "$f" "${PORT[$1]}" "$3"
	grep -q '^New, TLSv' "$T/sc.out" && [ -s "$f" ] || { cat "$T/sc.out"; return 2; }
	[ "$4" = 0 ] || sleep "$4"
	s_client in "$f" "${PORT[$2]}" "$3"
	grep -q '^Reused, TLSv' "$T/sc.out"
}
resumes_not() { # negative control
	local rc=0
	resumes "$@" || rc=$?
	[ $rc = 1 ] && grep -q '^New, TLSv' "$T/sc.out"
}

declare -A LOGOFF
mark_logs() { # remember where the error logs end
	local i
	for i in "$@"; do LOGOFF[$i]=$(stat -c %s "$T/$i/error.log" 2>/dev/null || echo 0); done
}
new_log() { tail -c +$((${LOGOFF[$1]:-0} + 1)) "$T/$1/error.log" 2>/dev/null || true; }
# errors since mark_logs: OpenSSL, cache or crash lines
CACHE_ERR_RE='ssl:error|ssl:crit|ssl:emerg|socache|SSL Library Error|scache|exit signal|Segmentation|Aborted|core dump'
no_errors() {
	local i bad=0
	for i in "$@"; do
		if new_log "$i" | grep -E "$CACHE_ERR_RE" >"$T/errs"; then
			say "$(wc -l <"$T/errs") error line(s) in $i/error.log, e.g.:"
			head -5 "$T/errs"
			bad=1
		fi
	done
	# a failed operation's cause is often in the dc_clients' logs
	[ $bad = 0 ] || grep -H "Warning" "$T"/dc_client-*.log 2>/dev/null | tail -6
	[ $bad = 0 ]
}
no_probation() {
	local i n bad=0
	for i in "$@"; do
		n=$(new_log "$i" | grep -c 'did not answer within' || true)
		if [ "$n" != 0 ]; then
			say "$n probation line(s) in $i/error.log, e.g.:"
			new_log "$i" | grep 'did not answer within' | head -3 || true
			bad=1
		fi
	done
	[ $bad = 0 ]
}
no_crash() {
	local i
	for i in "$@"; do
		! new_log "$i" | grep -E 'exit signal|Segmentation|Aborted|core dump'
	done
}

workers() { case $1 in prefork) echo 8 ;; *) echo 32 ;; esac; }
procs() { case $1 in prefork) echo 8 ;; *) echo 2 ;; esac; }
# every_worker_answers NAME MPM: every worker (prefork child, event thread)
# takes one connection at the same time and answers on it; every child
# process must appear in the access log, and afterwards no worker may stay
# busy (a worker stuck in the library would).  A stuck worker stays stuck,
# so one retry (for a worker merely slow on a busy machine) hides nothing.
every_worker_answers() {
	hold_once "$@" || { say "$1: retrying the every-worker check once"; hold_once "$@"; }
}
status() { # status NAME: mod_status machine-readable page
	curl -sk --max-time 5 --resolve "$SN:${PORT[$1]}:127.0.0.1" \
		"https://$SN:${PORT[$1]}/server-status?auto"
}
only_status_busy() { status "$1" | grep -x 'BusyWorkers: 1' >/dev/null; }
# current_generation NAME: no child of NAME predates its last graceful restart
current_generation() {
	local f=$T/$1/graceful.uptime k st hz
	[ -s "$f" ] || return 0
	hz=$(getconf CLK_TCK)
	for k in $(children "$1"); do
		st=$(awk '{print $22}' "/proc/$k/stat" 2>/dev/null) || continue
		[ -n "$st" ] || continue
		awk -v st="$st" -v hz="$hz" -v since="$(cat "$f")" \
			'BEGIN { exit !(st / hz >= since) }' || return 1
	done
}
hold_once() {
	local name=$1 mpm=$2 n p tag=/index.html?hold-$RANDOM$RANDOM kids seen missing=
	n=$(workers "$mpm")
	p=$(procs "$mpm")
	# after a graceful restart the old generation must be gone first
	wait_until 30 eval "current_generation $name && [ \$(children $name | wc -l) -eq $p ]" ||
		{ say "$name: $(children "$name" | wc -l) children, expected $p"; return 1; }
	kids=$(children "$name")
	if ! "$T/loadgen" -p "${PORT[$name]}" -c "$n" -hold -path "$tag" -sni "$SN" \
		-timeout 10 >"$T/hold.out" 2>&1; then
		cat "$T/hold.out"
		say "$name: children $(echo $kids); status:"
		status "$name" | grep -E 'Scoreboard|Processes|Busy|Idle'
		return 1
	fi
	# the access log names the process and thread that served each one
	wait_until 10 eval "[ \$(grep -c -- ' 200 $tag\$' $T/$name/access.log) -ge $n ]" || return 1
	seen=$(grep -- " 200 $tag\$" "$T/$name/access.log" | awk '{print $1}' | sort -u)
	for k in $kids; do
		grep -qx "$k" <<<"$seen" || missing="$missing $k"
	done
	[ -z "$missing" ] || { say "$name: children that did not answer:$missing"; return 1; }
	wait_until 15 only_status_busy "$name" ||
		{ say "$name: workers stay busy:"; status "$name" | grep -E 'Scoreboard|Busy'; return 1; }
}

# every child of NAME has GOGC=$LOW_GOGC and our engine mapped (so the
# load above exercised a Go runtime in each forked child)
# children_without_engine NAME: every child of the instance has GOGC=5 in
# its environment (for the engine it loads after a failure: the outage and
# stall runs) and no engine mapped yet: while every operation succeeds, the
# library's front makes the connection to the unix socket and does each
# operation itself, and the Go runtime is never started in the child.
children_without_engine() {
	local k n=0
	for k in $(children "$1"); do
		tr '\0' '\n' <"/proc/$k/environ" | grep -x "GOGC=$LOW_GOGC" >/dev/null ||
			{ say "child $k lacks GOGC=$LOW_GOGC"; return 1; }
		! grep -q 'libdistcache-engine\|memfd:distcache-engine' "/proc/$k/maps" ||
			{ say "child $k has the engine mapped ($(ls "/proc/$k/task" | wc -l) threads)"; return 1; }
		n=$((n + 1))
	done
	[ $n -gt 0 ]
}

rss_kb() { # average and max VmRSS of an instance's children
	local name=$1 sum=0 max=0 n=0 k v
	for k in $(children "$name"); do
		v=$(awk '/^VmRSS:/ {print $2}' "/proc/$k/status" 2>/dev/null || echo 0)
		[ -n "$v" ] || continue
		sum=$((sum + v)); n=$((n + 1)); [ "$v" -gt "$max" ] && max=$v
	done
	[ $n -gt 0 ] && echo "$((sum / n)) $max" || echo "0 0"
}

SUMMARY=()
# load LABEL MPM VER CACHE PORTS [loadgen args]: one load run, result in $T/load.out
load() {
	local label=$1 mpm=$2 ver=$3 cache=$4 ports=$5 rc=0
	shift 5
	"$T/loadgen" -p "$ports" -n "$LOAD_N" -c $CONC -chain 10 -tls "$ver" -sni "$SN" \
		-timeout 15 "$@" >"$T/load.out" 2>"$T/load.err" || rc=$?
	tail -1 "$T/load.out" >"$T/load.sum"
	say "$label: $(cat "$T/load.sum")"
	[ -s "$T/load.err" ] && { sed 's/^/    /' "$T/load.err" | head -25 || true; }
	local h ok f pct p50
	h=$(kv handshakes) ok=$(kv ok) f=$(kv failed) pct=$(kv resumed_pct) p50=$(kv p50_ms)
	SUMMARY+=("$(printf '%-8s %-5s %-4s %-22s %6s %9s %8s %8s' "$mpm" "$cache" "$ver" "$label" "$h" "$pct" "$f" "$p50")")
	return $rc
}
kv() { tr ' ' '\n' <"$T/load.sum" | sed -n "s/^$1=//p"; }
load_ok() { # all 200s and resumption >= $1 percent
	[ "$(kv failed)" = 0 ] && awk -v p="$(kv resumed_pct)" -v min="$1" 'BEGIN { exit !(p >= min) }'
}

# ---------------------------------------------------------------- start-up
# httpd's mod_socache_dc allocates its instance without clearing it; on the
# first configuration pass mod_ssl skips the cache's init, but the pool
# cleanup still calls destroy, which hands DC_CTX_free whatever the pool
# memory held.  Whether that is a plausible heap pointer (and free() then
# crashes) depends on the layout, so: many start/stop cycles, each with
# configuration paths (server root, pid file, logs, cache socket) and an
# environment of a different length and content.  No start may fail or
# crash.
startups() {
	local i name port rc bad=0 pad=abcdefghijklmnopqrstuvwxyz0123456789._-
	port=$(free_port)
	for i in $(seq 1 "$STARTS"); do
		name=startup/$i${pad:$((i % 13)):$((i * 7 % 40))}$(printf "%*s" $((i * 13 % 97)) '' | tr ' ' "${pad:$((i % 39)):1}")
		# (a unix socket path must fit in sun_path: 107 bytes)
		write_conf "$name" "$port" prefork "dc:UNIX:$T/c$i${pad:$((i % 7)):$((i * 11 % 33))}${pad:0:$((i % 29))}.sock"
		rc=0
		# every other start with glibc's MALLOC_PERTURB_ (fresh malloc memory
		# filled with a byte pattern, where APR's pools take it from malloc;
		# Debian's APR maps fresh zero pages, so there the pointer is NULL)
		env GOGC=$LOW_GOGC DC_PAD="$(printf "%*s" $((i * 29 % 400)) '' | tr ' ' y)" \
			$( [ $((i % 2)) = 0 ] && echo MALLOC_PERTURB_=$((i * 5 % 254 + 1)) ) \
			"$APACHE2" -f "$T/$name/httpd.conf" -k start >"$T/$name/start.log" 2>&1 || rc=$?
		INSTANCES+=("$name")
		if [ $rc != 0 ] || ! wait_until 15 eval "pid_alive \"\$(apache_pid '$name')\""; then
			say "start $i failed (status $rc) with ServerRoot $T/$name:"
			cat "$T/$name/start.log" "$T/$name/error.log" 2>/dev/null | tail -5
			bad=1
		fi
		stop_apache "$name"
		if grep -E 'exit signal|Segmentation|Aborted|core dump' "$T/$name/error.log" 2>/dev/null; then
			say "start $i crashed (ServerRoot $T/$name)"
			bad=1
		fi
		[ $bad = 0 ] || break
	done
	[ $bad = 0 ]
}

# tier_secure: the dc_clients are connected over TLS and every sealed
# session opened; a plaintext client is refused by dc_server.
tier_secure() {
	local c
	for c in A B; do
		grep -q "Info, connected to the server" "$T/dc_client-$c.log" || return 1
		! grep -Eq "did not open|refused|TLS handshake" "$T/dc_client-$c.log" || { cat "$T/dc_client-$c.log"; return 1; }
	done
	! grep -v "the client does not speak TLS" "$T/dc_server.log" | grep "refused" >/dev/null || { cat "$T/dc_server.log"; return 1; }
	local n
	n=$(grep -c "the client does not speak TLS" "$T/dc_server.log")
	printf 'plaintext' >/dev/tcp/127.0.0.1/$DC_PORT || return 1
	wait_until 10 eval '[ "$(grep -c "refused connection from 127.0.0.1:[0-9]*: the client does not speak TLS" "$T/dc_server.log")" -gt "$n" ]'
}

# ---------------------------------------------------------------- run
declare -A RSS
run_mpm() {
	local mpm=$1 v
	say "=== mpm_$mpm ==="
	PORT[A]=$(free_port)
	PORT[B]=$(free_port)
	while [ "${PORT[B]}" = "${PORT[A]}" ]; do PORT[B]=$(free_port); done

	# --- shared cache through dc; with the event MPM the dc_clients
	# share their near caches in memory (-nearmap)
	DCC_MAP=
	[ "$mpm" != event ] || DCC_MAP=-nearmap
	start_dc_server
	start_dc_client A
	start_dc_client B
	write_conf A "${PORT[A]}" "$mpm" "dc:UNIX:$T/A.sock"
	write_conf B "${PORT[B]}" "$mpm" "dc:UNIX:$T/B.sock"
	start_apache A
	start_apache B
	mark_logs A B

	for v in 1.2 1.3; do
		check "$mpm TLS$v: session from A resumes on B" resumes A B $v 0
		check "$mpm TLS$v: session from B resumes on A" resumes B A $v 0
	done
	if [ -n "$DCC_MAP" ]; then
		check "$mpm: dc_client -nearmap: resumptions of a session B read once are read from B's map" map_reads A B
	fi
	# The httpd 2.4 timeout bug: the module passes only the 0-999 ms
	# remainder of the lifetime.  Waiting past one second is the test.
	for v in 1.2 1.3; do
		s_client out "$T/late-$v.pem" "${PORT[A]}" $v
	done
	sleep 3
	for v in 1.2 1.3; do
		s_client in "$T/late-$v.pem" "${PORT[B]}" $v
		check "$mpm TLS$v: resumes on B 3 s after A made it" grep -q '^Reused, TLSv' "$T/sc.out"
	done

	# An upgrade of dc_server (SIGTTIN re-exec) keeps every session.
	for v in 1.2 1.3; do
		s_client out "$T/reexec-$v.pem" "${PORT[A]}" $v
	done
	check "$mpm: dc_server re-executes itself on SIGTTIN" "$T/ctl" dc-reexec
	for v in 1.2 1.3; do
		s_client in "$T/reexec-$v.pem" "${PORT[B]}" $v
		check "$mpm TLS$v: a session made on A before a dc_server re-exec resumes on B after it" \
			grep -q '^Reused, TLSv' "$T/sc.out"
	done

	for v in 1.2 1.3; do
		check "$mpm TLS$v: $LOAD_N handshakes c$CONC A/B, all 200, resumed >= 95%" \
			eval "load 'dc A/B' $mpm $v dc ${PORT[A]},${PORT[B]} && load_ok 95"
		check "$mpm TLS$v: every worker of A still answers" every_worker_answers A "$mpm"
		check "$mpm TLS$v: every worker of B still answers" every_worker_answers B "$mpm"
	done
	check "$mpm: no OpenSSL/cache errors in the logs" no_errors A B
	# libdistcache's bound (100 ms, adapting) never took the loaded
	# dc_clients for stalled: no context went on probation
	check "$mpm: no cache context went on probation under load (no false stall)" no_probation A B
	if [ "$SECURE" = 1 ]; then
		check "$mpm: cache tier: both dc_clients on mutual TLS with sealing, nothing refused or unopened" tier_secure
	fi
	check "$mpm: children run with GOGC=$LOW_GOGC and, every operation having succeeded, have no Go engine loaded" \
		eval "children_without_engine A && children_without_engine B"
	RSS[$mpm dc]=$(rss_kb A)

	mark_logs A B
	check "$mpm: graceful restarts during load, no failed request" \
		eval "load 'dc graceful' $mpm 1.2 dc ${PORT[A]},${PORT[B]} \
			-at '$((LOAD_N / 4)):$T/ctl graceful A' -at '$((LOAD_N / 2)):$T/ctl graceful B' && load_ok 80"
	check "$mpm: after graceful, every worker of A answers" every_worker_answers A "$mpm"
	check "$mpm: after graceful, every worker of B answers" every_worker_answers B "$mpm"
	check "$mpm: graceful: no OpenSSL/cache errors" no_errors A B

	# Twice, far enough apart that dc_client's link, re-made at once after
	# the first, is not taken for a failing one (re-made after -retry).
	# On the TLS tier dc_server closes its connections at a re-exec (their
	# TLS state cannot be passed): the dc_clients reconnect, a few
	# handshakes miss meanwhile.
	check "$mpm: dc_server re-executed twice during load, all 200, resumed >= 90%" \
		eval "load 'dc re-exec' $mpm 1.2 dc ${PORT[A]},${PORT[B]} \
			-at '$((LOAD_N / 4)):$T/ctl dc-reexec' -at '$((LOAD_N * 3 / 4)):$T/ctl dc-reexec' && load_ok 90"

	mark_logs A B
	check "$mpm: dc_server stopped and restarted during load, no failed request" \
		eval "load 'dc outage' $mpm 1.2 dc ${PORT[A]},${PORT[B]} \
			-at '$((LOAD_N / 4)):$T/ctl dc-stop' -at '$((LOAD_N * 3 / 4)):$T/ctl dc-start'"
	check "$mpm: outage: cache failures were logged (the outage happened)" \
		eval "new_log A | grep 'scache' >/dev/null || new_log B | grep 'scache' >/dev/null"
	check "$mpm: outage: no child crashed" no_crash A B
	check "$mpm: resumption returns within -retry after dc_server restarts" \
		wait_until $((RETRY_MS / 1000 + 15)) resumes A B 1.2 0
	check "$mpm: after outage, every worker of A answers" every_worker_answers A "$mpm"

	# A stalled cache: both dc_clients stopped (SIGSTOP) for the middle
	# half of a load run. libdistcache waits its bound once per process
	# (100 ms; on a loaded machine up to 10 times the slowest answer of
	# the last seconds), then answers misses at once until its dc_client
	# answers a probe: all 200, and the handshakes' p99 stays under 3 s (the old
	# library waited 3 s for each lookup and 3 s for each store).
	mark_logs A B
	check "$mpm: both dc_clients stopped (SIGSTOP) during load, all 200, p99 < 3 s" \
		eval "LOAD_N=$STALL_N load 'dc_client stopped' $mpm 1.2 dc ${PORT[A]},${PORT[B]} \
			-at '$((STALL_N / 4)):$T/ctl dcc-stop A' -at '$((STALL_N / 4)):$T/ctl dcc-stop B' \
			-at '$((STALL_N * 3 / 4)):$T/ctl dcc-cont A' -at '$((STALL_N * 3 / 4)):$T/ctl dcc-cont B' \
			&& load_ok 0 && awk -v p=\"\$(kv p99_ms)\" 'BEGIN { exit !(p < 3000) }'"
	"$T/ctl" dcc-cont A; "$T/ctl" dcc-cont B
	check "$mpm: stalled: the contexts went on probation (the stall happened) and came off" \
		eval "new_log A | grep 'did not answer within' >/dev/null && new_log A | grep 'answers again' >/dev/null"
	check "$mpm: stalled: resumption returns after SIGCONT" wait_until 15 resumes A B 1.2 0

	stop_apache A
	stop_apache B

	# The lifetime rule: the library replaces httpd 2.4's sub-second
	# timeouts by DISTCACHE_DEFAULT_LIFETIME seconds (default 300, which
	# the 3 s test above relies on).  Shown once, with a short lifetime.
	if [ "$mpm" = "${MPMS%% *}" ]; then
		APACHE_ENV="DISTCACHE_DEFAULT_LIFETIME=2" start_apache A
		APACHE_ENV="DISTCACHE_DEFAULT_LIFETIME=2" start_apache B
		check "DISTCACHE_DEFAULT_LIFETIME=2: resumes at once" resumes A B 1.2 0
		sleep 4 # past the 2 s lifetime: this wait is what is tested
		s_client in "$T/sess-A-1.2.pem" "${PORT[B]}" 1.2
		check "DISTCACHE_DEFAULT_LIFETIME=2: expired 4 s later" grep -q '^New, TLSv' "$T/sc.out"
		stop_apache A
		stop_apache B
	fi
	stop_dc_server

	# --- separate shmcb caches: negative control and baseline
	write_conf A "${PORT[A]}" "$mpm" "shmcb:$T/A/scache(512000)"
	write_conf B "${PORT[B]}" "$mpm" "shmcb:$T/B/scache(512000)"
	start_apache A
	start_apache B
	for v in 1.2 1.3; do
		check "$mpm TLS$v: separate shmcb caches do not resume across A/B" resumes_not A B $v 0
	done
	for v in 1.2 1.3; do
		check "$mpm TLS$v: shmcb baseline on A alone, all 200, resumed >= 95%" \
			eval "load 'shmcb A only' $mpm $v shmcb ${PORT[A]} && load_ok 95"
	done
	RSS[$mpm shmcb]=$(rss_kb A)
	stop_apache A
	stop_apache B
}

# ---------------------------------------------------------------- Redis
# The same two instances with the sessions in Redis: each dc_client talks
# to a master with two replicas and three sentinels (tests/redis/
# sentinel.sh, ports 26700-26712), no dc_server.  The master is killed
# (kill -9) during each load run: every request must still get its 200
# (a failed cache lookup is a full handshake), and resumption must come
# back once Sentinel has promoted a replica.
REDIS_SH=$ROOT/tests/redis/sentinel.sh
run_redis() {
	local mpm=$1 v addr dir=$T/redis-$1 pids=() n
	say "=== mpm_$mpm, sessions in Redis behind Sentinel ==="
	"$REDIS_SH" start "$dir" 26700 || die "cannot start the Redis Sentinel group"
	addr=$("$REDIS_SH" addr "$dir")
	for n in A B; do
		rm -f "$T/redis-$n.sock"
		own_session "$BIN/dc_client" -listen "UNIX:$T/redis-$n.sock" -server "$addr" \
			-sockgroup www-data -sockperms 0660 >>"$T/dc_client-redis-$n.log" 2>&1 &
		pids+=("$!")
		PIDS+=("$!")
		wait_until 10 test -S "$T/redis-$n.sock" || die "dc_client (Redis) $n made no socket"
	done
	write_conf A "${PORT[A]}" "$mpm" "dc:UNIX:$T/redis-A.sock"
	write_conf B "${PORT[B]}" "$mpm" "dc:UNIX:$T/redis-B.sock"
	start_apache A
	start_apache B
	mark_logs A B
	for v in 1.2 1.3; do
		check "$mpm redis TLS$v: session from A resumes on B" resumes A B $v 0
	done
	for v in 1.2 1.3; do
		check "$mpm redis TLS$v: Redis master killed during load, all 200" \
			eval "load 'redis master killed' $mpm $v redis ${PORT[A]},${PORT[B]} \
				-at '$((LOAD_N / 3)):$REDIS_SH kill-master $dir' && [ \"\$(kv failed)\" = 0 ]"
		check "$mpm redis TLS$v: resumption returns after the failover" wait_until 20 resumes A B $v 0
	done
	check "$mpm redis: no child crashed" no_crash A B
	stop_apache A
	stop_apache B
	kill "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
	"$REDIS_SH" stop "$dir"
}
redis_ok() {
	command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
	say "SKIPPED (Redis): redis-server and redis-cli are not installed (.ci/packages.d/redis.txt)"
	[ -z "${DISTCACHE_REQUIRE_E2E:-}" ] || die "Redis is required under DISTCACHE_REQUIRE_E2E"
	return 1
}

# ---------------------------------------------------------------- benchmark
# APACHE_REDIS=bench, first part (issue 11): resumed TLS 1.2 handshakes per
# second through one Apache instance, for each SSLSessionCache provider,
# under each MPM.  One `openssl s_time -reuse` client (every connection
# resumes the session of the first one by its id, so each handshake is one
# cache lookup and nothing else changes between providers); every provider
# has its own idle instance and the rounds alternate between them, the
# order rotating each round, so that a noisy machine disturbs them alike.
# Medians of the rounds; CPU time of the Apache children and of the cache
# daemons (from /proc) per handshake.  Knobs: APACHE_RESUME_SECS (each
# s_time run), APACHE_RESUME_ROUNDS, APACHE_RESUME_MPMS, APACHE_ORIG (a
# distcache 1.5 prefix: its library, built into mod_socache_dc, and its
# dc_server as one more row, when its libraries can be linked into a
# module), APACHE_RESUME_ALT (a directory of other builds of our tools:
# a row dc-straight-alt straight to its dc_server, a row dc-client-alt
# through its dc_client to its dc_server, or to ours when it has none, and
# in both its libraries when it has DIR/lib/libdistcache.so.1, for
# comparing two builds in one run), APACHE_RESUME_ONLY (the rows to run,
# by name, separated by spaces).
RESUME_PROVIDERS=()   # row names, in table order
declare -A RESUME_CACHE RESUME_DAEMONS RESUME_MOD RESUME_ENV
declare -A RESUME_DCC # a dc-client row's dc_client and its -server, for the farm's second one
cpu_ticks() { # cpu_ticks PID...: utime+stime of the processes, in clock ticks
	local p sum=0 v
	for p in "$@"; do
		v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || v=0
		sum=$((sum + ${v:-0}))
	done
	echo $sum
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# paired P BASE: the median over run_resume's rounds (its RES) of P's rate
# over BASE's in the same round: the rounds alternate the rows, so a round
# the machine made slow slows both; "-" without BASE
paired() {
	[ -n "${RES[$2]:-}" ] || { echo -; return; }
	paste <(printf '%s' "${RES[$1]}" | awk 'NF { print $1 }') <(printf '%s' "${RES[$2]}" | awk 'NF { print $1 }') |
		awk '$2 > 0 { print $1 / $2 }' | median | awk '$1 != "-" { printf "%.2f\n", $1; next } { print }'
}
resume_start() { # the stores and daemons every MPM's instances use
	local rport=$1 mport=$2 dport
	# dc_server on a unix socket (Apache straight to it) and one on TCP
	# loopback behind a dc_client (a farm's layout), both in the clear as
	# Redis and memcached are
	rm -f "$T/rs-dcs.sock" "$T/rs-dcc.sock"
	own_session "$BIN/dc_server" -listen "UNIX:$T/rs-dcs.sock" -sockgroup www-data -sockperms 0660 \
		>>"$T/rs-dc_server-unix.log" 2>&1 &
	PIDS+=("$!")
	local dcs_unix=$!
	# the same sharing its sessions in memory (-nearmap)
	rm -f "$T/rs-dcsm.sock"
	own_session "$BIN/dc_server" -listen "UNIX:$T/rs-dcsm.sock" -nearmap -sockgroup www-data -sockperms 0660 \
		>>"$T/rs-dc_server-map.log" 2>&1 &
	PIDS+=("$!")
	local dcsm=$!
	dport=$(free_port)
	own_session "$BIN/dc_server" -listen "IP:127.0.0.1:$dport" >>"$T/rs-dc_server-tcp.log" 2>&1 &
	PIDS+=("$!")
	local dcs_tcp=$!
	wait_until 10 port_open "$dport" || die "dc_server does not listen on $dport"
	own_session "$BIN/dc_client" -listen "UNIX:$T/rs-dcc.sock" -server "IP:127.0.0.1:$dport" \
		-sockgroup www-data -sockperms 0660 >>"$T/rs-dc_client.log" 2>&1 &
	PIDS+=("$!")
	local dcc=$!
	# the same with its near cache shared in memory (-nearmap)
	rm -f "$T/rs-dccm.sock"
	own_session "$BIN/dc_client" -listen "UNIX:$T/rs-dccm.sock" -server "IP:127.0.0.1:$dport" -nearmap \
		-sockgroup www-data -sockperms 0660 >>"$T/rs-dc_client-map.log" 2>&1 &
	PIDS+=("$!")
	local dccm=$!
	wait_until 10 test -S "$T/rs-dcs.sock" || die "dc_server made no socket"
	wait_until 10 test -S "$T/rs-dcc.sock" || die "dc_client made no socket"
	wait_until 10 test -S "$T/rs-dccm.sock" || die "dc_client -nearmap made no socket"
	wait_until 10 test -S "$T/rs-dcsm.sock" || die "dc_server -nearmap made no socket"

	RESUME_PROVIDERS=(shmcb memcache redis dc-straight dc-straight-map dc-client dc-client-map)
	RESUME_CACHE[shmcb]="shmcb:$T/rs-shmcb(512000)"
	RESUME_CACHE[memcache]=memcache:127.0.0.1:$mport
	wait_until 10 test -s "$T/bench-redis/memcached/pid" || die "memcached wrote no pid file"
	RESUME_DAEMONS[memcache]=$(cat "$T/bench-redis/memcached/pid")
	RESUME_CACHE[redis]=redis:127.0.0.1:$rport
	RESUME_DAEMONS[redis]=$(cat "$T/bench-redis/pid")
	RESUME_CACHE[dc-straight]=dc:UNIX:$T/rs-dcs.sock
	RESUME_DAEMONS[dc-straight]=$dcs_unix
	RESUME_CACHE[dc-straight-map]=dc:UNIX:$T/rs-dcsm.sock
	RESUME_DAEMONS[dc-straight-map]=$dcsm
	RESUME_CACHE[dc-client]=dc:UNIX:$T/rs-dcc.sock
	RESUME_DAEMONS[dc-client]="$dcc $dcs_tcp"
	RESUME_DCC[dc-client]="$BIN/dc_client -server IP:127.0.0.1:$dport"
	RESUME_CACHE[dc-client-map]=dc:UNIX:$T/rs-dccm.sock
	RESUME_DAEMONS[dc-client-map]="$dccm $dcs_tcp"
	RESUME_DCC[dc-client-map]="$BIN/dc_client -server IP:127.0.0.1:$dport -nearmap"
	local alt=${APACHE_RESUME_ALT:-} altenv= aport
	[ -z "$alt" ] || [ -x "$alt/dc_client" ] || [ -x "$alt/dc_server" ] ||
		die "APACHE_RESUME_ALT=$alt has neither dc_client nor dc_server"
	# the other build's libraries too, when it has them (make install of it)
	[ -z "$alt" ] || [ ! -e "$alt/lib/libdistcache.so.1" ] || altenv="LD_LIBRARY_PATH=$alt/lib"
	if [ -n "$alt" ] && [ -x "$alt/dc_server" ]; then
		# its dc_server straight, on a unix socket
		rm -f "$T/rs-dcs-alt.sock"
		own_session "$alt/dc_server" -listen "UNIX:$T/rs-dcs-alt.sock" -sockgroup www-data -sockperms 0660 \
			>>"$T/rs-dc_server-unix-alt.log" 2>&1 &
		PIDS+=("$!")
		RESUME_DAEMONS[dc-straight-alt]=$!
		wait_until 10 test -S "$T/rs-dcs-alt.sock" || die "the other dc_server made no socket"
		RESUME_PROVIDERS+=(dc-straight-alt)
		RESUME_CACHE[dc-straight-alt]=dc:UNIX:$T/rs-dcs-alt.sock
	fi
	if [ -n "$alt" ] && [ -x "$alt/dc_client" ]; then
		local altsrv=$alt/dc_server
		[ -x "$altsrv" ] || altsrv=$BIN/dc_server
		aport=$(free_port)
		while [ "$aport" = "$dport" ]; do aport=$(free_port); done
		own_session "$altsrv" -listen "IP:127.0.0.1:$aport" >>"$T/rs-dc_server-alt.log" 2>&1 &
		PIDS+=("$!")
		local alts=$!
		wait_until 10 port_open "$aport" || die "the other dc_server does not listen on $aport"
		rm -f "$T/rs-dcc-alt.sock"
		own_session "$alt/dc_client" -listen "UNIX:$T/rs-dcc-alt.sock" -server "IP:127.0.0.1:$aport" \
			-sockgroup www-data -sockperms 0660 >>"$T/rs-dc_client-alt.log" 2>&1 &
		PIDS+=("$!")
		RESUME_DAEMONS[dc-client-alt]="$! $alts"
		RESUME_DCC[dc-client-alt]="$alt/dc_client -server IP:127.0.0.1:$aport"
		wait_until 10 test -S "$T/rs-dcc-alt.sock" || die "the other dc_client made no socket"
		RESUME_PROVIDERS+=(dc-client-alt)
		RESUME_CACHE[dc-client-alt]=dc:UNIX:$T/rs-dcc-alt.sock
	fi
	local p
	for p in "${RESUME_PROVIDERS[@]}"; do RESUME_MOD[$p]=$MODSO; RESUME_ENV[$p]=; done
	for p in dc-straight-alt dc-client-alt; do [ -z "${RESUME_CACHE[$p]:-}" ] || RESUME_ENV[$p]=$altenv; done

	[ -n "${APACHE_ORIG:-}" ] || return 0
	# the original: its library in the module, its dc_server on a unix socket
	mkdir -p "$T/origmod"
	cp "$modc" "$T/origmod/mod_socache_dc.c"
	if ! (cd "$T/origmod" && "$APXS" -c -I"$APACHE_ORIG/include" -L"$APACHE_ORIG/lib" \
		-ldistcache -lnal mod_socache_dc.c) >"$T/origmod/apxs.log" 2>&1; then
		say "APACHE_ORIG=$APACHE_ORIG: no row: its libraries do not link into a module" \
			"($(grep -m1 -o 'recompile with -fPIC' "$T/origmod/apxs.log" || tail -1 "$T/origmod/apxs.log");" \
			"build it with CFLAGS=-fPIC or shared libraries)"
		return 0
	fi
	rm -f "$T/rs-orig.sock"
	own_session "$APACHE_ORIG/bin/dc_server" -listen "UNIX:$T/rs-orig.sock" -sockgroup www-data -sockperms 0660 \
		>>"$T/rs-orig.log" 2>&1 &
	PIDS+=("$!")
	RESUME_DAEMONS[orig]=$!
	wait_until 10 test -S "$T/rs-orig.sock" || die "the original dc_server made no socket"
	RESUME_PROVIDERS+=(orig)
	RESUME_CACHE[orig]=dc:UNIX:$T/rs-orig.sock
	RESUME_MOD[orig]=$T/origmod/.libs/mod_socache_dc.so
	RESUME_ENV[orig]="LD_LIBRARY_PATH=$APACHE_ORIG/lib"
}
# resume_setup RPORT MPORT: resume_start, and every row's store on an
# equal footing (own_session)
resume_setup() {
	local p
	resume_start "$@"
	for p in "${RESUME_PROVIDERS[@]}"; do
		# shellcheck disable=SC2086
		own_sessions ${RESUME_DAEMONS[$p]:-} || die "$p: a cache daemon (${RESUME_DAEMONS[$p]}) shares a session"
	done
}
# take_rounds N ONCE ZERO ROW...: N rounds over the rows, the order
# rotating each round; "ONCE ROW" measures once and prints its figures,
# the rate first (ZERO for a run that failed), each line appended to the
# caller's RES[ROW]
take_rounds() {
	local n=$1 once=$2 zero=$3 r i p res line
	shift 3
	local rows=("$@")
	for r in $(seq 1 "$n"); do
		line="round $r:"
		for i in $(seq 0 $(($# - 1))); do
			p=${rows[$(((i + r - 1) % $#))]}
			res=$($once "$p") || res=$zero
			RES[$p]+="$res"$'\n'
			line+=" $p ${res%% *}/s"
		done
		say "$line (load average $(cut -d' ' -f1 /proc/loadavg))"
	done
}
# medians ROW N: the medians of the first N columns of the caller's RES[ROW]
medians() {
	local c
	for c in $(seq 1 "$2"); do printf '%s' "${RES[$1]}" | awk -v c="$c" 'NF { print $c }' | median; done | tr '\n' ' '
}
resume_row() { resume_once "rs-$1" "$1"; }
# resume_once NAME PROVIDER: one s_time run; appends "rate resumed% apache_us daemon_us"
resume_once() {
	local name=$1 prov=$2 secs=${APACHE_RESUME_SECS:-4} kids t0 t1 a0 a1 d0 d1 n r
	kids=$(children "$name")
	a0=$(cpu_ticks $kids) d0=$(cpu_ticks ${RESUME_DAEMONS[$prov]:-})
	t0=$(date +%s.%N)
	timeout $((secs + 30)) openssl s_time -connect "127.0.0.1:${PORT[$name]}" -tls1_2 -reuse \
		-time "$secs" >"$T/stime.out" 2>&1 || true
	t1=$(date +%s.%N)
	a1=$(cpu_ticks $kids) d1=$(cpu_ticks ${RESUME_DAEMONS[$prov]:-})
	# s_time prints one character per connection: r resumed, * (or t) new
	n=$(sed -n '/^starting/,/connections in/p' "$T/stime.out" | grep -v 'connections in' | tr -cd 'r*t' | wc -c)
	r=$(sed -n '/^starting/,/connections in/p' "$T/stime.out" | grep -v 'connections in' | tr -cd 'r' | wc -c)
	if [ "$n" -lt 2 ]; then
		say "$name: s_time made no connections:"
		tail -5 "$T/stime.out" | sed 's/^/    /'
		return 1
	fi
	awk -v n="$n" -v r="$r" -v t0="$t0" -v t1="$t1" -v a="$((a1 - a0))" -v d="$((d1 - d0))" \
		-v hz="$(getconf CLK_TCK)" 'BEGIN {
		printf "%.0f %.1f %.1f %.1f\n", n / (t1 - t0), 100 * r / n, a * 1e6 / hz / n, d * 1e6 / hz / n }'
}
# only_rows ROW...: the rows APACHE_RESUME_ONLY names (all without it), one a line
only_rows() {
	local p
	for p in "$@"; do
		[ -n "${APACHE_RESUME_ONLY:-}" ] && [[ " $APACHE_RESUME_ONLY " != *" $p "* ]] && continue
		echo "$p"
	done
}
run_resume() {
	local mpm p rounds=${APACHE_RESUME_ROUNDS:-3}
	# only the rows named (the others' daemons stay idle)
	local rows
	rows=$(only_rows "${RESUME_PROVIDERS[@]}")
	[ -n "$rows" ] || { say "resume: APACHE_RESUME_ONLY=$APACHE_RESUME_ONLY names none of ${RESUME_PROVIDERS[*]}"; return 0; }
	local -a RESUME_PROVIDERS
	mapfile -t RESUME_PROVIDERS <<<"$rows"
	local -A RES
	local tables=()
	for mpm in ${APACHE_RESUME_MPMS:-event prefork}; do
		say "=== resumption rate, mpm_$mpm: ${RESUME_PROVIDERS[*]} ==="
		for p in "${RESUME_PROVIDERS[@]}"; do
			PORT[rs-$p]=$(free_port)
			local keep=$MODSO
			MODSO=${RESUME_MOD[$p]}
			write_conf "rs-$p" "${PORT[rs-$p]}" "$mpm" "${RESUME_CACHE[$p]}"
			MODSO=$keep
			# Go's default GOGC in the children (the test's low value is for finding bugs)
			APACHE_ENV="GOGC=100 ${RESUME_ENV[$p]}" start_apache "rs-$p"
			mark_logs "rs-$p"
			RES[$p]=
		done
		take_rounds "$rounds" resume_row "0 0 0 0" "${RESUME_PROVIDERS[@]}"
		local -A MED
		for p in "${RESUME_PROVIDERS[@]}"; do
			MED[$p]=$(medians "$p" 4)
			no_errors "rs-$p" || say "rs-$p: errors in the log (above)"
			stop_apache "rs-$p"
		done
		local base_redis=${MED[redis]:-} base_mc=${MED[memcache]:-} base_shm=${MED[shmcb]:-}
		base_redis=${base_redis%% *} base_mc=${base_mc%% *} base_shm=${base_shm%% *}
		tables+=("" "mpm_$mpm, TLS 1.2, one openssl s_time -reuse client, medians of $rounds rounds of ${APACHE_RESUME_SECS:-4} s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
			"| SSLSessionCache | resumed handshakes/s | vs redis: | vs memcache: | vs shmcb | vs redis:, vs shmcb round by round | resumed % | Apache CPU µs/handshake | cache daemons' CPU µs/handshake |"
			"|---|---|---|---|---|---|---|---|---|")
		for p in "${RESUME_PROVIDERS[@]}"; do
			read -r rate pct aus dus <<<"${MED[$p]}"
			tables+=("$(awk -v p="$p" -v c="${RESUME_CACHE[$p]%%:*}" -v rate="$rate" -v pct="$pct" -v aus="$aus" -v dus="$dus" \
				-v br="$base_redis" -v bm="$base_mc" -v bs="$base_shm" -v shm="$([ "$p" = shmcb ] && echo 1)" \
				-v pr="$(paired "$p" redis)" -v ps="$(paired "$p" shmcb)" '
				function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
				BEGIN { printf "| %s | %d | %s | %s | %s | %s, %s | %s | %s | %s |\n", p, rate, ratio(rate, br), ratio(rate, bm),
					ratio(rate, bs), pr, ps, pct, aus, shm ? "-" : dus }')")
		done
	done
	# the rows: shmcb (shared memory), memcache: (memcached), redis:
	# (redis-server), dc-straight (dc: to dc_server's unix socket), dc-client
	# (dc: to dc_client's unix socket, dc_client to dc_server on TCP
	# loopback), dc-straight-map and dc-client-map (the same with
	# -nearmap: the library reads
	# the sessions dc_client's near cache holds from shared memory),
	# dc-straight-alt and dc-client-alt (the same through
	# APACHE_RESUME_ALT's tools and libraries), orig (distcache 1.5's library and dc_server, unix socket)
	RESUME_TABLES+=("${tables[@]}")
}

# APACHE_REDIS=bench, the farm part: what a load balancer in front of two
# Apache instances sees.  The loadgen workers go round robin, every
# connection to the other instance than the last, each offering the
# session its last connection got (on the other instance), renewed every
# APACHE_FARM_CHAIN connections: every resumption is a session another
# instance made.  Each instance has its own dc_client on the one
# dc_server (the README's layout), where the near cache keeps a session
# read once (GETLIFE), or none with -near 0 (the row dc-client-near0:
# every lookup goes to dc_server, as in distcache 1.5).  shmcb with one
# cache per instance is the farm that shares nothing: it resumes nothing
# and is the floor.  Rows as run_resume's, rounds alternating and
# rotating, medians and ratios.  Knobs: APACHE_FARM_MPMS (default "event
# prefork"), APACHE_FARM_SECS (each run; default APACHE_RESUME_SECS or 4),
# APACHE_FARM_ROUNDS (default APACHE_RESUME_ROUNDS or 3),
# APACHE_FARM_CONC (loadgen workers, default 4), APACHE_FARM_CHAIN
# (default 10), APACHE_RESUME_ONLY.
FARM_PROVIDERS=()
declare -A FARM_A FARM_B FARM_DAEMONS FARM_MOD FARM_ENV
# farm_dcc NAME CMD -server ADDR [OPTION...]: one more dc_client, its
# socket $T/fm-NAME.sock; its pid in FARM_PID
farm_dcc() {
	local name=$1
	shift
	rm -f "$T/fm-$name.sock"
	own_session "$@" -listen "UNIX:$T/fm-$name.sock" -sockgroup www-data -sockperms 0660 \
		>>"$T/fm-$name.log" 2>&1 &
	PIDS+=("$!")
	FARM_PID=$!
	wait_until 10 test -S "$T/fm-$name.sock" || die "dc_client $name made no socket"
	own_sessions $FARM_PID || die "dc_client $name ($FARM_PID) shares a session"
}
farm_setup() {
	local p dcc
	for p in "${RESUME_PROVIDERS[@]}"; do
		FARM_PROVIDERS+=("$p")
		FARM_A[$p]=${RESUME_CACHE[$p]} FARM_B[$p]=${RESUME_CACHE[$p]}
		FARM_DAEMONS[$p]=${RESUME_DAEMONS[$p]:-}
		FARM_MOD[$p]=${RESUME_MOD[$p]} FARM_ENV[$p]=${RESUME_ENV[$p]}
		case $p in
		shmcb) FARM_A[$p]="shmcb:$T/fm-shmcbA(512000)" FARM_B[$p]="shmcb:$T/fm-shmcbB(512000)" ;;
		dc-client | dc-client-map | dc-client-alt)
			# B's own dc_client on the same dc_server
			# shellcheck disable=SC2086
			farm_dcc "$p" ${RESUME_DCC[$p]}
			FARM_B[$p]=dc:UNIX:$T/fm-$p.sock
			FARM_DAEMONS[$p]+=" $FARM_PID"
			;;
		esac
		if [ "$p" = dc-client ]; then
			# both instances' dc_clients without a near cache, on dc-client's dc_server
			FARM_PROVIDERS+=(dc-client-near0)
			# shellcheck disable=SC2086
			farm_dcc near0A ${RESUME_DCC[$p]} -near 0
			FARM_A[dc-client-near0]=dc:UNIX:$T/fm-near0A.sock
			dcc=$FARM_PID
			# shellcheck disable=SC2086
			farm_dcc near0B ${RESUME_DCC[$p]} -near 0
			FARM_B[dc-client-near0]=dc:UNIX:$T/fm-near0B.sock
			FARM_DAEMONS[dc-client-near0]="$dcc $FARM_PID ${RESUME_DAEMONS[$p]#* }"
			FARM_MOD[dc-client-near0]=$MODSO FARM_ENV[dc-client-near0]=
		fi
	done
	local rows
	rows=$(only_rows "${FARM_PROVIDERS[@]}")
	FARM_PROVIDERS=()
	[ -z "$rows" ] || mapfile -t FARM_PROVIDERS <<<"$rows"
}
# farm_once PROVIDER MPM: one loadgen run on fa-MPM-PROVIDER and
# fb-MPM-PROVIDER; prints "rate resumed% p50_ms apache_us daemon_us failed"
farm_once() {
	local p=$1 mpm=$2 a=fa-$2-$1 b=fb-$2-$1 kids a0 a1 d0 d1 h
	local secs=${APACHE_FARM_SECS:-${APACHE_RESUME_SECS:-4}}
	kids="$(children "$a") $(children "$b")"
	# shellcheck disable=SC2086
	a0=$(cpu_ticks $kids) d0=$(cpu_ticks ${FARM_DAEMONS[$p]:-})
	"$T/loadgen" -p "${PORT[$a]},${PORT[$b]}" -n 1000000 -time "$secs" -c "${APACHE_FARM_CONC:-4}" \
		-chain "${APACHE_FARM_CHAIN:-10}" -tls 1.2 -sni "$SN" -timeout 15 >"$T/load.out" 2>"$T/load.err" || true
	# shellcheck disable=SC2086
	a1=$(cpu_ticks $kids) d1=$(cpu_ticks ${FARM_DAEMONS[$p]:-})
	tail -1 "$T/load.out" >"$T/load.sum"
	h=$(kv handshakes)
	if [ -z "$h" ] || [ "$h" -lt 2 ]; then
		say "$p: loadgen made no handshakes:"
		tail -5 "$T/load.err" | sed 's/^/    /'
		return 1
	fi
	awk -v n="$h" -v s="$(kv secs)" -v pct="$(kv resumed_pct)" -v p50="$(kv p50_ms)" -v f="$(kv failed)" \
		-v a="$((a1 - a0))" -v d="$((d1 - d0))" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		printf "%.0f %.1f %.2f %.1f %.1f %d\n", n / s, pct, p50, a * 1e6 / hz / n, d * 1e6 / hz / n, f }'
}
farm_row() { farm_once "$1" "$mpm"; } # $mpm: run_farm's
run_farm() {
	local mpm p rounds=${APACHE_FARM_ROUNDS:-${APACHE_RESUME_ROUNDS:-3}} tables=()
	local secs=${APACHE_FARM_SECS:-${APACHE_RESUME_SECS:-4}} conc=${APACHE_FARM_CONC:-4} chain=${APACHE_FARM_CHAIN:-10}
	farm_setup
	[ ${#FARM_PROVIDERS[@]} -gt 0 ] || { say "farm: APACHE_RESUME_ONLY=$APACHE_RESUME_ONLY names none of its rows"; return 0; }
	local -A RES
	for mpm in ${APACHE_FARM_MPMS:-event prefork}; do
		say "=== farm of two instances, mpm_$mpm: ${FARM_PROVIDERS[*]} ==="
		for p in "${FARM_PROVIDERS[@]}"; do
			local n keep=$MODSO
			MODSO=${FARM_MOD[$p]}
			for n in a b; do
				PORT[f$n-$mpm-$p]=$(free_port)
				[ $n = a ] || while [ "${PORT[fb-$mpm-$p]}" = "${PORT[fa-$mpm-$p]}" ]; do PORT[fb-$mpm-$p]=$(free_port); done
			done
			write_conf "fa-$mpm-$p" "${PORT[fa-$mpm-$p]}" "$mpm" "${FARM_A[$p]}"
			write_conf "fb-$mpm-$p" "${PORT[fb-$mpm-$p]}" "$mpm" "${FARM_B[$p]}"
			MODSO=$keep
			for n in a b; do
				APACHE_ENV="GOGC=100 ${FARM_ENV[$p]}" start_apache "f$n-$mpm-$p"
				mark_logs "f$n-$mpm-$p"
			done
			RES[$p]=
		done
		# a second's load first, not counted: every child has loaded its
		# session cache (our engine is loaded at a child's first use)
		for p in "${FARM_PROVIDERS[@]}"; do
			APACHE_FARM_SECS=1 farm_once "$p" "$mpm" >/dev/null || true
		done
		take_rounds "$rounds" farm_row "0 0 0 0 0 0" "${FARM_PROVIDERS[@]}"
		local -A MED
		for p in "${FARM_PROVIDERS[@]}"; do
			MED[$p]="$(medians "$p" 5) "
			MED[$p]+=$(printf '%s' "${RES[$p]}" | awk '{ f += $6 } END { print f + 0 }')
			for n in a b; do
				no_errors "f$n-$mpm-$p" || say "f$n-$mpm-$p: errors in the log (above)"
				stop_apache "f$n-$mpm-$p"
			done
		done
		local br=${MED[redis]:-} bm=${MED[memcache]:-} bs=${MED[shmcb]:-}
		br=${br%% *} bm=${bm%% *} bs=${bs%% *}
		tables+=("" "farm of two instances, mpm_$mpm, TLS 1.2, loadgen round robin ($conc workers, a new session every $chain connections), medians of $rounds rounds of $secs s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
			"| SSLSessionCache | handshakes/s | vs redis: | vs memcache: | vs shmcb, one per instance | vs redis: round by round | resumed % | p50 ms | Apache CPU µs/handshake | cache daemons' CPU µs/handshake | failed requests |"
			"|---|---|---|---|---|---|---|---|---|---|---|")
		for p in "${FARM_PROVIDERS[@]}"; do
			local rate pct p50 aus dus failed
			read -r rate pct p50 aus dus failed <<<"${MED[$p]}"
			tables+=("$(awk -v p="$p" -v rate="$rate" -v pct="$pct" -v p50="$p50" -v aus="$aus" -v dus="$dus" -v f="$failed" \
				-v br="$br" -v bm="$bm" -v bs="$bs" -v shm="$([ "$p" = shmcb ] && echo 1)" -v pr="$(paired "$p" redis)" '
				function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
				BEGIN { printf "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", p, rate, ratio(rate, br), ratio(rate, bm),
					ratio(rate, bs), pr, pct, p50, aus, shm ? "-" : dus, f }')")
		done
	done
	RESUME_TABLES+=("${tables[@]}")
}

# APACHE_REDIS=bench, second part: the same two-instance load (event MPM, TLS 1.2,
# sessions renewed every 10 handshakes) with four session caches side by
# side: dc: through dc_client to Redis, httpd's own redis: and memcache:
# providers (on the same Redis, on memcached), and dc: through dc_client
# to dc_server.  Then each again with its store killed for 10 s during
# the load.  Not a pass/fail test: it prints a table.
run_bench() {
	local mpm=${MPMS%% *} n=${APACHE_BENCH_N:-6000} rport=26720 mport=26730 prov cache sum row out=()
	local rdir=$T/bench-redis
	mkdir -p "$rdir"
	command -v memcached >/dev/null || die "memcached is not installed"
	cat >"$T/bctl" <<EOF
#!/bin/bash
# generated by tests/apache/run.sh: start or stop a benchmark store
# (without the caller's descriptors: a store left running must not hold
# the end-to-end lock)
for f in /proc/\$\$/fd/*; do n=\${f##*/}; [ "\$n" -gt 2 ] 2>/dev/null && eval "exec \$n>&-" 2>/dev/null; done
case \$1 in
redis-start) redis-server --port $rport --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \\
		--pidfile $rdir/pid --logfile $rdir/log --dir $rdir
	for i in \$(seq 100); do [ "\$(redis-cli -p $rport ping 2>/dev/null)" = PONG ] && exit 0; sleep 0.05; done; exit 1 ;;
redis-stop) kill -9 \$(cat $rdir/pid) ;;
memcache-start) memcached -d -l 127.0.0.1 -p $mport -U 0 -u nobody -m 256 -P $rdir/memcached/pid
	for i in \$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$mport) 2>/dev/null && exit 0; sleep 0.05; done; exit 1 ;;
memcache-stop) kill -9 \$(cat $rdir/memcached/pid) ;;
dc-start) exec "$T/ctl" dc-start ;;
dc-stop) kill -9 \$(cat $T/dc_server.pid) ;;
esac
EOF
	chmod 755 "$T/bctl"
	# memcached writes its pid file after dropping to nobody
	mkdir -p "$rdir/memcached"
	chown nobody "$rdir/memcached"
	"$T/bctl" redis-start || die "cannot start redis-server"
	"$T/bctl" memcache-start || die "cannot start memcached"
	local parts=" ${APACHE_BENCH_PARTS:-resume farm failover} "
	RESUME_TABLES=()
	[[ $parts != *" resume "* && $parts != *" farm "* ]] || resume_setup "$rport" "$mport"
	[[ $parts != *" resume "* ]] || run_resume
	[[ $parts != *" farm "* ]] || run_farm
	if [[ $parts != *" failover "* ]]; then
		"$T/bctl" redis-stop
		"$T/bctl" memcache-stop
		printf '%s\n' "${RESUME_TABLES[@]}"
		return 0
	fi
	start_dc_server
	local n2
	for n2 in A B; do
		start_dc_client "$n2"
		rm -f "$T/r$n2.sock"
		own_session "$BIN/dc_client" -listen "UNIX:$T/r$n2.sock" -server "redis://127.0.0.1:$rport" \
			-sockgroup www-data -sockperms 0660 >>"$T/dc_client-r$n2.log" 2>&1 &
		PIDS+=("$!")
		wait_until 10 test -S "$T/r$n2.sock" || die "dc_client (Redis) made no socket"
	done
	PORT[A]=$(free_port)
	PORT[B]=$(free_port)
	while [ "${PORT[B]}" = "${PORT[A]}" ]; do PORT[B]=$(free_port); done
	for prov in dc-redis redis memcache dc-dc_server; do
		local store=${prov#dc-}
		[ "$store" = dc_server ] && store=dc
		local ca cb
		case $prov in
		dc-redis) ca=dc:UNIX:$T/rA.sock cb=dc:UNIX:$T/rB.sock ;;
		redis) ca=redis:127.0.0.1:$rport cb=$ca ;;
		memcache) ca=memcache:127.0.0.1:$mport cb=$ca ;;
		dc-dc_server) ca=dc:UNIX:$T/A.sock cb=dc:UNIX:$T/B.sock ;;
		esac
		write_conf A "${PORT[A]}" "$mpm" "$ca"
		write_conf B "${PORT[B]}" "$mpm" "$cb"
		start_apache A
		start_apache B
		"$T/loadgen" -p "${PORT[A]},${PORT[B]}" -n "$n" -c $CONC -chain 10 -tls 1.2 -sni "$SN" \
			-timeout 15 >"$T/load.out" 2>/dev/null || true
		tail -1 "$T/load.out" >"$T/load.sum"
		row="| $prov | $(awk -v h="$(kv handshakes)" -v s="$(kv secs)" 'BEGIN { printf "%.0f", h / s }') | $(kv resumed_pct) | $(kv p50_ms) | $(kv p99_ms)"
		"$T/loadgen" -p "${PORT[A]},${PORT[B]}" -n "$n" -c $CONC -chain 10 -tls 1.2 -sni "$SN" -timeout 15 \
			-at "$((n / 5)):$T/bctl $store-stop; (sleep 10; $T/bctl $store-start) >/dev/null 2>&1 &" \
			>"$T/load.out" 2>/dev/null || true
		tail -1 "$T/load.out" >"$T/load.sum"
		row="$row | $(kv failed) | $(kv resumed_pct) | $(kv max_ms) |"
		out+=("$row")
		say "$row"
		stop_apache A
		stop_apache B
		# the store is back (the 10 s restart ran during the load)
		wait_until 20 eval "[ -z \"\$(pgrep -f 'sleep 10')\" ]" || true
	done
	stop_dc_server
	"$T/bctl" redis-stop
	"$T/bctl" memcache-stop
	printf '%s\n' "${RESUME_TABLES[@]}"
	echo
	say "side by side: mpm_$mpm, TLS 1.2, $n handshakes a run, concurrency $CONC, two instances; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "| cache | handshakes/s | resumed % | p50 ms | p99 ms | store killed 10 s: failed requests | resumed % | longest handshake ms |"
	echo "|---|---|---|---|---|---|---|---|"
	printf '%s\n' "${out[@]}"
}

start=$SECONDS
if [ "${APACHE_REDIS:-1}" = bench ]; then
	run_bench
	exit 0
fi
if [ "${APACHE_REDIS:-1}" = only ]; then
	STARTS=0
	MPMS_DC=
else
	MPMS_DC=$MPMS
fi
check "$STARTS starts and stops with configuration paths and environments of varied length: none fails or crashes" startups
for m in $MPMS_DC; do run_mpm "$m"; done
if [ "${APACHE_REDIS:-1}" != 0 ] && redis_ok; then
	for m in $MPMS; do
		PORT[A]=$(free_port)
		PORT[B]=$(free_port)
		while [ "${PORT[B]}" = "${PORT[A]}" ]; do PORT[B]=$(free_port); done
		run_redis "$m"
	done
fi

echo
say "summary ($((SECONDS - start)) s; concurrency $CONC, sessions renewed every 10 handshakes)"
printf '%-8s %-5s %-4s %-22s %6s %9s %8s %8s\n' MPM cache TLS run handshakes resumed% failures p50_ms
printf '%s\n' "${SUMMARY[@]}"
echo
printf '%-8s %-6s %12s %12s\n' MPM cache "child RSS avg KB" "max KB"
for m in $MPMS; do
	for c in dc shmcb; do
		[ -n "${RSS[$m $c]:-}" ] || continue
		read -r a x <<<"${RSS[$m $c]:-0 0}"
		printf '%-8s %-6s %12s %12s\n' "$m" "$c" "$a" "$x"
	done
done
echo
n=0
for f in "${FAILURES[@]}"; do
	n=$((n + 1))
	say "failed: $f"
	# its last lines, where a check prints the log lines it objects to
	tail -n 12 "$T/failed-$n.out" | sed 's/^/    | /'
done
echo "apache-check: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
