# cmd/: the tools' man pages (installed into section 1 and 8) and
# `make demo` (scripts/demo, called by the top-level Makefile).
MAN1 := dc_test.1 dc_snoop.1
MAN8 := dc_server.8 dc_client.8

INSTALL_TARGETS   += install-man
UNINSTALL_TARGETS += uninstall-man
CHECK_TARGETS     += check-man check-demo

.PHONY: install-man uninstall-man check-man check-demo

# The demo must keep working: a one-second run of it.
check-demo: tools
	@DEMO_SECONDS=1 ./scripts/demo $(BUILD)/bin >$(BUILD)/demo.log 2>&1 || \
	  { cat $(BUILD)/demo.log; echo "check-demo: failed"; exit 1; }
	@echo "check-demo: ok"

install-man:
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 $(addprefix man/,$(MAN1)) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(addprefix man/,$(MAN8)) $(DESTDIR)$(MANDIR)/man8/

uninstall-man:
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(MAN1)) $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(MAN8))

# Every option in a tool's usage text must be documented in its man page.
check-man: tools
	@for t in dc_server dc_client dc_test dc_snoop; do \
	  page=$$(ls man/$$t.[18]); \
	  for o in $$($(BUILD)/bin/$$t -h 2>&1 | grep -o '^ *-[a-z?]*' | tr -d ' '); do \
	    grep -qF -- "\\$$o" $$page || { echo "check-man: $$o of $$t is not in $$page"; exit 1; }; \
	  done; \
	done; echo "check-man: ok"
