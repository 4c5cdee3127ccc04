# SPDX-License-Identifier: Apache-2.0
# Sessions in Redis (goimpl/redisstore): the Go tests start their own
# Redis deployments (make check runs them with go test); tests/apache runs
# the two Apache instances through dc_client -> Redis (Sentinel) with the
# master killed under load.
#
# make bench-socache: Apache with httpd's own session caches and ours side
# by side, in three parts (tests/apache/README.md):
#  - resume: resumed TLS 1.2 handshakes per second through one instance
#    (openssl s_time -reuse), event and prefork, for shmcb, memcache:,
#    redis:, dc: straight to dc_server and dc: through dc_client to
#    dc_server (and the original distcache 1.5 given as ORIG=/prefix, when
#    its libraries link into a module), rounds alternating, medians and
#    ratios; BENCH_SOCACHE_SECS each run (default 4), BENCH_SOCACHE_ROUNDS
#    (default 3); BENCH_SOCACHE_ALT=DIR adds rows straight to DIR's
#    dc_server and through its dc_client (with DIR/lib's libraries if it has
#    them), to compare two builds in one run; BENCH_SOCACHE_ONLY="redis
#    dc-straight ..." runs only the rows named;
#  - farm: two instances, a round-robin load (every connection resumes a
#    session the other instance made), each instance with its own
#    dc_client on one dc_server (and again with -near 0), against the same
#    rows; BENCH_SOCACHE_CONC loadgen workers (default 4),
#    BENCH_SOCACHE_CHAIN connections a session (default 10);
#  - failover: the two-instance load of the end-to-end test with four
#    caches (dc: -> dc_client -> Redis, redis:, memcache:, dc: -> dc_client
#    -> dc_server), each also with its store killed for 10 s;
#    BENCH_SOCACHE_N handshakes a run.
# BENCH_SOCACHE_PARTS="resume farm failover" picks them.  Needs root, apache2,
# redis-server, memcached; takes the end-to-end lock (fixed ports; -o: the
# stores it starts do not inherit it).

BENCH_TARGETS += bench-socache

.PHONY: bench-socache

bench-socache: all
	flock -o /tmp/e2e.lock env APACHE_REDIS=bench APACHE_MPMS=event APACHE_BENCH_N=$(or $(BENCH_SOCACHE_N),6000) \
	  APACHE_BENCH_PARTS="$(or $(BENCH_SOCACHE_PARTS),resume farm failover)" APACHE_RESUME_SECS=$(or $(BENCH_SOCACHE_SECS),4) \
	  APACHE_RESUME_ROUNDS=$(or $(BENCH_SOCACHE_ROUNDS),3) APACHE_ORIG="$(ORIG)" APACHE_RESUME_ALT="$(BENCH_SOCACHE_ALT)" \
	  APACHE_RESUME_ONLY="$(BENCH_SOCACHE_ONLY)" APACHE_FARM_CONC=$(or $(BENCH_SOCACHE_CONC),4) \
	  APACHE_FARM_CHAIN=$(or $(BENCH_SOCACHE_CHAIN),10) \
	  MAKE="$(MAKE)" BUILD="$(BUILD)" DC_BIN="$(BUILD)/bin" ./tests/apache/run.sh
