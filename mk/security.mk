# SPDX-License-Identifier: Apache-2.0
# TLS and sealing on the distcache link (issue 12): make bench-secure runs
# cmd/dc_client's BenchmarkLink (application -> dc_client -> dc_server, one
# persistent upstream connection, in-process) plain, with mutual TLS 1.3,
# with sealing, and with both, over SECURE_BENCH_COUNT rounds. Each round
# runs every mode in a process of its own, the order rotated from round to
# round, so that a change in the machine's load does not fall on one mode;
# it prints each mode's median throughput and CPU time per operation as
# ratios to plain.

SECURE_BENCH_COUNT ?= 5
SECURE_BENCH_TIME  ?= 2s
SECURE_BENCH_MODES := plain tls seal tls+seal
BENCH_TARGETS      += bench-secure

.PHONY: bench-secure
bench-secure:
	@mkdir -p $(BUILD)
	@$(GO) test -c -o $(BUILD)/dc_client-bench.test ./cmd/dc_client
	@set -e; : >$(BUILD)/bench-secure.txt; modes="$(SECURE_BENCH_MODES)"; \
	for r in $$(seq 1 $(SECURE_BENCH_COUNT)); do \
	  for m in $$modes; do \
	    (cd cmd/dc_client && $(BUILD)/dc_client-bench.test -test.run '^$$' \
	      -test.bench "^BenchmarkLink\$$/^mode=$$(echo $$m | sed 's/+/\\+/')\$$" \
	      -test.benchtime $(SECURE_BENCH_TIME)) | grep '^Benchmark' | tee -a $(BUILD)/bench-secure.txt; \
	  done; \
	  modes="$$(echo $$modes | awk '{ for (i = 2; i <= NF; i++) printf "%s ", $$i; print $$1 }')"; \
	done
	@awk -f mk/secure-ratios.awk $(BUILD)/bench-secure.txt
