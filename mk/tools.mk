# cmd/: the tools' man pages (installed into section 1 and 8),
# `make demo` (scripts/demo, called by the top-level Makefile), and the
# checks of what the top-level Makefile promises: `make` builds and tests
# nothing, one version everywhere, hardened and reproducible builds.
MAN1 := dc_test.1 dc_snoop.1
MAN8 := dc_server.8 dc_client.8
MAN7 := distcache.7

INSTALL_TARGETS   += install-man
UNINSTALL_TARGETS += uninstall-man
CHECK_TARGETS     += check-man check-demo check-default-goal check-version check-hardening-tools \
                     check-reproducible

.PHONY: install-man uninstall-man check-man check-demo check-default-goal check-version \
        check-hardening-tools check-reproducible

# The demo must keep working: a one-second run of it.
check-demo: tools
	@DEMO_SECONDS=1 ./scripts/demo $(BUILD)/bin >$(BUILD)/demo.log 2>&1 || \
	  { cat $(BUILD)/demo.log; echo "check-demo: failed"; exit 1; }
	@echo "check-demo: ok"

install-man:
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 $(addprefix man/,$(MAN1)) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(addprefix man/,$(MAN7)) $(DESTDIR)$(MANDIR)/man7/
	install -m 0644 $(addprefix man/,$(MAN8)) $(DESTDIR)$(MANDIR)/man8/

uninstall-man:
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(MAN1)) $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(MAN8)) \
	  $(addprefix $(DESTDIR)$(MANDIR)/man7/,$(MAN7))

# Every option in a tool's usage text must be documented in its man page.
check-man: tools
	@for t in dc_server dc_client dc_test dc_snoop; do \
	  page=$$(ls man/$$t.[18]); \
	  for o in $$($(BUILD)/bin/$$t -h 2>&1 | grep -o '^ *-[a-z?]*' | tr -d ' '); do \
	    grep -qF -- "\\$$o" $$page || { echo "check-man: $$o of $$t is not in $$page"; exit 1; }; \
	  done; \
	done; echo "check-man: ok"

# `make` with no target is `make all`, whatever mk/*.mk defines first.
check-default-goal:
	@goal=$$($(MAKE) --no-print-directory -pq 2>/dev/null | sed -n 's/^\.DEFAULT_GOAL := //p'); \
	  [ "$$goal" = all ] || { echo "check-default-goal: make with no target runs '$$goal', not all"; exit 1; }
	@echo "check-default-goal: ok"

# One version (the file VERSION): every tool's -version, the .pc files.
check-version: tools
	@echo "$(VERSION)" | grep -Eqx '[0-9]+\.[0-9]+\.[0-9]+' || \
	  { echo "check-version: VERSION holds '$(VERSION)', not MAJOR.MINOR.PATCH"; exit 1; }
	@for t in $(TOOLS); do out=$$($(BUILD)/bin/$$t -version); \
	  [ "$$out" = "$$t $(VERSION)" ] || { echo "check-version: $$t -version printed '$$out', want '$$t $(VERSION)'"; exit 1; }; \
	done
	@rm -rf $(BUILD)/version-root
	@$(MAKE) --no-print-directory install-capi DESTDIR=$(BUILD)/version-root >/dev/null
	@for pc in $$(find $(BUILD)/version-root -name '*.pc'); do \
	  grep -qx 'Version: $(VERSION)' $$pc || { echo "check-version: $$pc: $$(grep ^Version: $$pc), want $(VERSION)"; exit 1; }; \
	done
	@rm -rf $(BUILD)/version-root
	@echo "check-version: ok ($(VERSION))"

# The Go tools are PIE with full RELRO (Go has no stack protector or
# fortified libc calls to check).
check-hardening-tools: tools
	@command -v hardening-check >/dev/null || { echo "check-hardening-tools: hardening-check missing (apt-get install devscripts)"; exit 1; }
	hardening-check --quiet --nostackprotector --nofortify --nocfprotection $(addprefix $(BUILD)/bin/,$(TOOLS))
	@echo "check-hardening-tools: ok"

# Two checkouts in different directories install byte-identical trees,
# built and installed by an unprivileged user (scripts/check-reproducible).
check-reproducible:
	@MAKE="$(MAKE)" GO="$(GO)" ./scripts/check-reproducible $(BUILD)/repro
