# SPDX-License-Identifier: Apache-2.0
# debian/: the native Debian packages (libdistcache1: the libraries and
# their engine; libdistcache-dev: headers, .so links, .pc, man3;
# distcache-tools: the tools, their systemd units and man pages).
# make deb-check builds them with dpkg-buildpackage, runs lintian, checks
# their contents, installs them (as root) and runs the Apache end-to-end
# test against the installed packages (scripts/check-debian;
# .ci/packages.d/debian.txt).

CHECK_TARGETS += deb-check

.PHONY: deb-check

deb-check:
	MAKE="$(MAKE)" ./scripts/check-debian $(BUILD)/debcheck $(BUILD)
