# SPDX-License-Identifier: Apache-2.0
# cmd/: the tools' man pages (installed into section 1 and 8),
# `make demo` (scripts/demo, called by the top-level Makefile), and the
# checks of what the top-level Makefile promises: `make` builds and tests
# nothing, one version everywhere, hardened and reproducible builds.
MAN1 := dc_test.1 dc_snoop.1
MAN8 := dc_server.8 dc_client.8
MAN7 := distcache.7
# The C API: one page per object family, and a ".so" link for every other
# function it documents (the names of its NAME section, scripts/man-names).
MAN3 := $(notdir $(wildcard man/*.3))

INSTALL_TARGETS   += install-man
UNINSTALL_TARGETS += uninstall-man
CHECK_TARGETS     += check-man check-man-render check-demo check-default-goal check-version check-hardening-tools \
                     check-reproducible check-uninstall check-spdx check-refs

.PHONY: install-man uninstall-man check-man check-man-render check-demo check-default-goal check-version \
        check-hardening-tools check-reproducible check-uninstall check-spdx check-refs

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
	install -d $(DESTDIR)$(MANDIR)/man3
	@set -e; for p in $(MAN3); do \
	  install -m 0644 man/$$p $(DESTDIR)$(MANDIR)/man3/$$p; \
	  for n in $$(./scripts/man-names man/$$p); do \
	    [ "$$n.3" = "$$p" ] || { echo ".so man3/$$p" >$(DESTDIR)$(MANDIR)/man3/$$n.3; \
	      chmod 0644 $(DESTDIR)$(MANDIR)/man3/$$n.3; }; \
	  done; \
	done

uninstall-man:
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(MAN1)) $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(MAN8)) \
	  $(addprefix $(DESTDIR)$(MANDIR)/man7/,$(MAN7))
	@for p in $(MAN3); do \
	  for n in $$(./scripts/man-names man/$$p); do rm -f $(DESTDIR)$(MANDIR)/man3/$$n.3; done; \
	done

# Every option of a tool's -h is the tag of a paragraph of its page (the
# line after a .TP), so that no option's text runs into the one before it.
check-man: tools
	@for t in dc_server dc_client dc_test dc_snoop; do \
	  page=$$(ls man/$$t.[18]); tags=$$(awk '/^\.TP/ { getline; print }' $$page); \
	  for o in $$($(BUILD)/bin/$$t -h 2>&1 | grep -o '^ *-[a-z0-9?]*' | tr -d ' '); do \
	    re=$$(printf '%s' "$$o" | sed 's/?/[?]/'); \
	    printf '%s\n' "$$tags" | grep -qE -- "\\\\$$re([^a-z0-9]|$$)" || \
	      { echo "check-man: $$o of $$t is not the tag of a .TP paragraph of $$page"; exit 1; }; \
	  done; \
	done; echo "check-man: ok"

# `make` with no target is `make all`, whatever mk/*.mk defines first.
check-default-goal:
	@goal=$$($(MAKE) --no-print-directory -pq 2>/dev/null | sed -n 's/^\.DEFAULT_GOAL := //p'); \
	  [ "$$goal" = all ] || { echo "check-default-goal: make with no target runs '$$goal', not all"; exit 1; }
	@echo "check-default-goal: ok"

# One version (the file VERSION): every tool's -version, the .pc files,
# the engine (dce_engine_version), debian/changelog.
check-version: tools capi
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
	@$(CC) -Wall -Wextra -o $(BUILD)/engine-version scripts/engine-version.c -ldl
	@out=$$($(BUILD)/engine-version $(CAPI_ENGINE)); [ "$$out" = "$(VERSION)" ] || \
	  { echo "check-version: the engine reports '$$out', want $(VERSION)"; exit 1; }
	@deb=$$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' debian/changelog); [ "$$deb" = "$(VERSION)" ] || \
	  { echo "check-version: debian/changelog is at $$deb, VERSION at $(VERSION)"; exit 1; }
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
	@MAKE="$(MAKE)" GO="$(GO)" ./scripts/check-reproducible

# Every page renders without a warning from man, every function of the
# headers has a page or a link, and every installed link renders.
check-man-render:
	@set -e; for p in man/*.[1-8]; do \
	  w=$$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l $$p 2>&1 >/dev/null); \
	  [ -z "$$w" ] || { echo "$$w"; echo "check-man-render: $$p: man warns"; exit 1; }; \
	done
	@names=$$(./scripts/man-names man/*.3); \
	for f in $$(grep -ohE '\b(NAL|DC)_[A-Za-z0-9_]+\(' include/*/*.h | tr -d '(' | sort -u); do \
	  echo "$$names" | grep -qx "$$f" || { echo "check-man-render: $$f (include/) has no man page in man/*.3"; exit 1; }; \
	done
	@rm -rf $(BUILD)/man-root
	@$(MAKE) --no-print-directory install-man DESTDIR=$(BUILD)/man-root PREFIX=/usr >/dev/null
	@set -e; for f in $(BUILD)/man-root/usr/share/man/man3/*.3; do \
	  n=$$(basename $$f .3); \
	  out=$$(LC_ALL=C.UTF-8 MANWIDTH=80 MANPATH=$(BUILD)/man-root/usr/share/man man --warnings 3 $$n 2>&1) || \
	    { echo "$$out"; echo "check-man-render: man 3 $$n fails"; exit 1; }; \
	  echo "$$out" | grep -q "$$n" || { echo "check-man-render: man 3 $$n does not show $$n"; exit 1; }; \
	done
	@echo "check-man-render: ok ($$(ls $(BUILD)/man-root/usr/share/man/man3 | wc -l) section 3 names)"
	@rm -rf $(BUILD)/man-root

# make uninstall removes every file make install put there.
check-uninstall: all
	@rm -rf $(BUILD)/uninstall-root
	@$(MAKE) --no-print-directory install DESTDIR=$(BUILD)/uninstall-root PREFIX=/usr >/dev/null
	@$(MAKE) --no-print-directory uninstall DESTDIR=$(BUILD)/uninstall-root PREFIX=/usr >/dev/null
	@left=$$(find $(BUILD)/uninstall-root ! -type d); [ -z "$$left" ] || \
	  { echo "$$left"; echo "check-uninstall: make uninstall left the files above"; exit 1; }
	@rm -rf $(BUILD)/uninstall-root
	@echo "check-uninstall: ok"

# Every source file carries its SPDX licence line (scripts/check-spdx).
check-spdx:
	@./scripts/check-spdx

# The repository describes itself: no pointer to files outside it.
check-refs:
	@./scripts/check-refs
