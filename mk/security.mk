# SPDX-License-Identifier: Apache-2.0
# TLS and sealing on the distcache link (issue 12): make bench-secure runs
# cmd/dc_client's BenchmarkLink (application -> dc_client -> dc_server, one
# persistent upstream connection, in-process) plain, with mutual TLS 1.3,
# with sealing, and with both, the four modes interleaved over
# SECURE_BENCH_COUNT rounds, and prints each mode's median throughput and
# CPU time per operation as ratios to plain.

SECURE_BENCH_COUNT ?= 5
SECURE_BENCH_TIME  ?= 2s
BENCH_TARGETS      += bench-secure

.PHONY: bench-secure
bench-secure:
	@$(GO) test -run '^$$' -bench '^BenchmarkLink$$' -benchtime $(SECURE_BENCH_TIME) \
	  -count $(SECURE_BENCH_COUNT) ./cmd/dc_client | tee $(BUILD)/bench-secure.txt | grep '^Benchmark'
	@awk -f mk/secure-ratios.awk $(BUILD)/bench-secure.txt
