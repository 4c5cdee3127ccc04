#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A Redis master with two replicas and three sentinels on loopback, for
# the end-to-end tests and benchmarks (the Go tests start their own through
# goimpl/redisstore/redistest).  Ports: BASE (master), BASE+1, BASE+2
# (replicas), BASE+10..12 (sentinels); use BASE within 26700-26989.
#
#   sentinel.sh start DIR BASE   start and wait until replicated and watched
#   sentinel.sh addr DIR         the redis-sentinel:// address
#   sentinel.sh master DIR       host:port of the current master
#   sentinel.sh kill-master DIR  kill -9 the current master
#   sentinel.sh stop DIR         kill every process
set -euo pipefail
NAME=dcmaster
DOWN_AFTER=${REDIS_DOWN_AFTER_MS:-300}

cmd=${1:?usage: sentinel.sh start|addr|master|kill-master|stop DIR [BASE]}
dir=${2:?directory}

cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }
wait_until() { # wait_until SECS CMD...
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.05
	done
}
server() { # server PORT [args]
	local p=$1
	shift
	mkdir -p "$dir/$p"
	redis-server --port "$p" --bind 127.0.0.1 --protected-mode no --save '' --appendonly no \
		--dir "$dir/$p" --daemonize yes --pidfile "$dir/$p/pid" --logfile "$dir/$p/log" "$@"
	wait_until 10 eval "[ \"\$(cli $p ping)\" = PONG ]" || { echo "redis-server $p does not answer" >&2; exit 1; }
}
sentinel() { # sentinel PORT MASTERPORT
	mkdir -p "$dir/$1"
	cat >"$dir/$1/sentinel.conf" <<EOC
port $1
bind 127.0.0.1
protected-mode no
dir $dir/$1
daemonize yes
pidfile $dir/$1/pid
logfile $dir/$1/log
sentinel resolve-hostnames no
sentinel monitor $NAME 127.0.0.1 $2 2
sentinel down-after-milliseconds $NAME $DOWN_AFTER
sentinel failover-timeout $NAME 2000
sentinel parallel-syncs $NAME 2
EOC
	redis-server "$dir/$1/sentinel.conf" --sentinel
	wait_until 10 eval "[ \"\$(cli $1 ping)\" = PONG ]" || { echo "sentinel $1 does not answer" >&2; exit 1; }
}
synced() { # the master has 2 online replicas
	[ "$(cli "$1" info replication | grep -c 'state=online')" = 2 ]
}
watched() { # every sentinel knows the 2 others and the 2 replicas
	local s
	for s in "$@"; do
		cli "$s" sentinel master $NAME | tr -d '\r' | paste - - | grep -x $'num-other-sentinels\t2' >/dev/null || return 1
		cli "$s" sentinel master $NAME | tr -d '\r' | paste - - | grep -x $'num-slaves\t2' >/dev/null || return 1
	done
}
sentinels() { cat "$dir/sentinels"; }

# The daemons must not inherit a lock the caller holds (flock /tmp/e2e.lock
# ...): one left running would hold it for ever.
close_fds() {
	local f n
	for f in /proc/$$/fd/*; do
		n=${f##*/}
		[ "$n" -gt 2 ] 2>/dev/null && eval "exec $n>&-" 2>/dev/null || true
	done
}

case $cmd in
start)
	base=${3:?base port}
	close_fds
	mkdir -p "$dir"
	server "$base"
	server $((base + 1)) --replicaof 127.0.0.1 "$base"
	server $((base + 2)) --replicaof 127.0.0.1 "$base"
	wait_until 15 synced "$base" || { echo "replicas not in sync" >&2; exit 1; }
	echo "$((base + 10)) $((base + 11)) $((base + 12))" >"$dir/sentinels"
	for s in $(sentinels); do sentinel "$s" "$base"; done
	# shellcheck disable=SC2046
	wait_until 30 watched $(sentinels) || { echo "sentinels do not see each other" >&2; exit 1; }
	;;
addr)
	printf 'redis-sentinel://'
	printf '127.0.0.1:%s,' $(sentinels) | sed 's/,$//'
	printf '/%s\n' $NAME
	;;
master)
	for s in $(sentinels); do
		if m=$(cli "$s" sentinel get-master-addr-by-name $NAME 2>/dev/null | tr -d '\r' | paste -sd:); then
			[ -n "$m" ] && { echo "$m"; exit 0; }
		fi
	done
	exit 1
	;;
kill-master)
	m=$("$0" master "$dir")
	kill -9 "$(cat "$dir/${m##*:}/pid")"
	;;
stop)
	for f in "$dir"/*/pid; do
		[ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
	done
	;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
