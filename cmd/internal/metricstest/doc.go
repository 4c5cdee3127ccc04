// SPDX-License-Identifier: Apache-2.0

// Package metricstest holds the end-to-end tests of the daemons' -metrics
// endpoint (goimpl/metrics): exact totals under a known load and a dc_test
// load, a real Prometheus scraping dc_server and dc_client, promtool's
// linter, the status page in a real headless Chromium, and the Grafana
// dashboard in contrib/grafana checked against a live scrape. The
// daemons are built (or taken from $DC_BIN) and started on loopback.
package metricstest
