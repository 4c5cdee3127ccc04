# SPDX-License-Identifier: Apache-2.0
# bench/: our dc_server against memcached under the same load (make bench).
BENCH_TARGETS += bench-memcached

.PHONY: bench-memcached
bench-memcached: tools
	@command -v memcached >/dev/null || { echo "bench: memcached not installed (apt-get install memcached)"; exit 1; }
	$(GO) run ./bench -dcserver $(BUILD)/bin/dc_server

# bench/vsorig: our dc_server and dc_client against a distcache 1.5
# installation, under the original's own dc_test (make bench ORIG=/prefix;
# nothing of the original is bundled or fetched).
BENCH_TARGETS += bench-orig
ORIG ?=

.PHONY: bench-orig
bench-orig: tools
	@if [ -z "$(ORIG)" ]; then echo "bench-orig: skipped (ORIG=/prefix of a distcache 1.5 installation compares with it)"; \
	else $(GO) run ./bench/vsorig -orig "$(ORIG)" -ours $(BUILD)/bin; fi
