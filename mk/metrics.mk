# SPDX-License-Identifier: Apache-2.0
# Metrics (goimpl/metrics, -metrics on dc_server and dc_client): what they
# cost, metrics on against off under the same load, as a ratio (make bench).
# The end-to-end tests (cmd/internal/metricstest: Prometheus, promtool,
# Chromium) run in go-test; their packages are in .ci/packages.d/metrics.txt.
BENCH_TARGETS += bench-metrics

.PHONY: bench-metrics
bench-metrics: tools
	$(GO) run ./bench/metrics -bin $(BUILD)/bin
