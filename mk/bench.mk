# bench/: our dc_server against memcached under the same load (make bench).
BENCH_TARGETS += bench-memcached

.PHONY: bench-memcached
bench-memcached: tools
	@command -v memcached >/dev/null || { echo "bench: memcached not installed (apt-get install memcached)"; exit 1; }
	$(GO) run ./bench -dcserver $(BUILD)/bin/dc_server
