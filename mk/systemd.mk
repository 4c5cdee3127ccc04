# SPDX-License-Identifier: Apache-2.0
# systemd/: the units of dc_server and dc_client (socket activated,
# Type=notify, sandboxed), installed into SYSTEMDUNITDIR with BINDIR
# substituted. make check-systemd verifies them, rates their exposure and
# runs both daemons under systemd-socket-activate (scripts/check-systemd).
SYSTEMD_UNITS := dc_server.service dc_server.socket dc_client.service dc_client.socket

INSTALL_TARGETS   += install-systemd
UNINSTALL_TARGETS += uninstall-systemd
CHECK_TARGETS     += check-systemd

.PHONY: install-systemd uninstall-systemd check-systemd

install-systemd:
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	@set -e; for u in $(SYSTEMD_UNITS); do \
	  if [ -f systemd/$$u.in ]; then \
	    sed 's|@BINDIR@|$(BINDIR)|g' systemd/$$u.in >$(DESTDIR)$(SYSTEMDUNITDIR)/$$u; \
	    chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u; \
	  else install -m 0644 systemd/$$u $(DESTDIR)$(SYSTEMDUNITDIR)/$$u; fi; \
	done

uninstall-systemd:
	rm -f $(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(SYSTEMD_UNITS))

check-systemd: tools
	rm -rf $(BUILD)/systemd-root
	$(MAKE) --no-print-directory install-systemd install-man DESTDIR=$(BUILD)/systemd-root \
	  PREFIX=/usr SYSTEMDUNITDIR=/lib/systemd/system >/dev/null
	./scripts/check-systemd $(BUILD)/bin $(BUILD)/systemd-root
	rm -rf $(BUILD)/systemd-root
