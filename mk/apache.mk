# SPDX-License-Identifier: Apache-2.0
# Apache httpd end-to-end test (issue 5): two Apache instances with the
# unmodified mod_socache_dc, built against our libdistcache/libnal, share
# TLS sessions through dc_client -> dc_server, under load, with the
# prefork and event MPMs.  Needs root and Debian's apache2 packages
# (.ci/packages.d/apache.txt, .ci/setup.d/apache.sh); skips with a message
# when apache2/apxs are absent.  See tests/apache/README.md.

.PHONY: apache-check

apache-check: all
	MAKE="$(MAKE)" BUILD="$(BUILD)" DC_BIN="$(BUILD)/bin" ./tests/apache/run.sh

CHECK_TARGETS += apache-check
