# SPDX-License-Identifier: Apache-2.0
# Sessions in Redis (goimpl/redisstore): the Go tests start their own
# Redis deployments (make check runs them with go test); tests/apache runs
# the two Apache instances through dc_client -> Redis (Sentinel) with the
# master killed under load.
#
# make bench-socache: the same two-instance Apache load with four session
# caches side by side (dc: -> dc_client -> Redis, httpd's redis: and
# memcache:, dc: -> dc_client -> dc_server), each also with its store
# killed for 10 s.  Needs root, apache2, redis-server, memcached; takes the
# end-to-end lock (fixed ports; -o: the stores it starts do not inherit it).  BENCH_SOCACHE_N handshakes a run.

BENCH_TARGETS += bench-socache

.PHONY: bench-socache

bench-socache: all
	flock -o /tmp/e2e.lock env APACHE_REDIS=bench APACHE_MPMS=event APACHE_BENCH_N=$(or $(BENCH_SOCACHE_N),6000) \
	  MAKE="$(MAKE)" BUILD="$(BUILD)" DC_BIN="$(BUILD)/bin" ./tests/apache/run.sh
