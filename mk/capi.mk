# SPDX-License-Identifier: Apache-2.0
# The C ABI drop-in (issue 4): the Go engine (capi/, nal/, dc/), the three
# C front libraries with the original sonames (capi/front/), headers,
# pkg-config files, and the C compatibility suite (ctests/).
# RUNPATH $ORIGIN lets libdistcache(server) find libnal.so.1 beside it,
# as libtool's rpath did for the original in a non-system libdir.
#
#   build/lib/libnal.so.1.0.1 (+ .so.1, .so)            NEEDED libc only
#   build/lib/libdistcache.so.1.0.1 (+ links)           NEEDED libnal.so.1
#   build/lib/libdistcacheserver.so.1.0.1 (+ links)     NEEDED libnal.so.1
#   build/lib/distcache/libdistcache-engine-N.so        the Go engine (dlopened),
#                                                       N its interface version
#
# Build flags: CFLAGS (default -O2 -g), CPPFLAGS and LDFLAGS are honoured
# (dpkg-buildflags' are fine); CGO_CFLAGS / CGO_LDFLAGS for the engine's
# cgo parts. Hardening is on by default and comes first, so the caller's
# flags can override it: stack protector, stack clash protection, CET where
# the compiler has it, _FORTIFY_SOURCE=2, full RELRO and immediate binding
# (shared libraries: PIC; PIE is for executables). Warnings are errors only
# in make check's own compile (capi-werror).

CC         ?= cc
CFLAGS     ?= -O2 -g
CPPFLAGS   ?=
LDFLAGS    ?=
CAPI_LIB   := $(BUILD)/lib
CAPI_VER   := 1.0.1
CAPI_PCVER := $(VERSION)
CAPI_SAN    ?=
CAPI_WERROR ?=
capi_cc_has = $(shell $(CC) $(1) -Werror -E -x c /dev/null >/dev/null 2>&1 && echo $(1))
CAPI_HARDEN_CPPFLAGS := -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2
CAPI_HARDEN_CFLAGS := -fstack-protector-strong $(call capi_cc_has,-fstack-clash-protection) \
  $(call capi_cc_has,-fcf-protection)
CAPI_HARDEN_LDFLAGS := -Wl,-z,relro -Wl,-z,now
CAPI_CPPFLAGS := -Iinclude -Icapi/front -DDCF_VERSION='"$(VERSION)"' $(CAPI_HARDEN_CPPFLAGS) $(CPPFLAGS)
CAPI_CFLAGS := $(CAPI_HARDEN_CFLAGS) $(CFLAGS) -ffile-prefix-map=$(CURDIR)=. -fPIC -fvisibility=hidden \
  -Wall -Wextra $(CAPI_WERROR) $(CAPI_SAN)
CAPI_LDFLAGS := $(CAPI_HARDEN_LDFLAGS) $(LDFLAGS)
# The engine's cgo C code: hardened the same way; the caller's CGO_CFLAGS
# (not CFLAGS, which may carry build paths the go command would record).
# Go's build cache does not notice an edit of a header outside a package's
# own directory, and capi/, dc/ and nal/ include capi/front/*.h: a checksum
# of those headers rides in the engine's C flags, so that such an edit (a
# new DCF_ENGINE_ABI, say) rebuilds the engine instead of reusing a stale one.
CAPI_FRONT_SUM := $(shell cat capi/front/*.h | cksum | cut -d' ' -f1)
CAPI_CGO_CFLAGS := $(CAPI_HARDEN_CPPFLAGS) $(CAPI_HARDEN_CFLAGS) $(or $(CGO_CFLAGS),-O2 -g) -DDCF_FRONT_SUM=$(CAPI_FRONT_SUM)
CAPI_CGO_LDFLAGS := $(CAPI_HARDEN_LDFLAGS) $(CGO_LDFLAGS)
CAPI_FRONT_H := mk/capi.mk capi/front/engine.h capi/front/api_gen.h capi/front/wire.h capi/front/wire_gen.h capi/front/nearmap.h capi/front/front.h capi/front/target.h \
  $(wildcard include/*/*.h)
# The engine's interface version (one source: capi/front/engine.h) is in its
# file name; the front also compares the engine's whole interface with its
# own when it loads it, and refuses another one.
CAPI_ABI    := $(shell sed -n 's/^\#define DCF_ENGINE_ABI \([0-9][0-9]*\)$$/\1/p' capi/front/engine.h)
CAPI_ENGINE_NAME := libdistcache-engine-$(CAPI_ABI).so
CAPI_ENGINE := $(CAPI_LIB)/distcache/$(CAPI_ENGINE_NAME)
CAPI_LIBS   := nal distcache distcacheserver
CAPI_HEADERS := libnal/nal.h distcache/dc_plug.h distcache/dc_client.h distcache/dc_server.h
CTEST_ROOT  := $(BUILD)/ctest-root
CTEST_PREFIX := /usr/local

ALL_TARGETS       += capi
INSTALL_TARGETS   += install-capi
UNINSTALL_TARGETS += uninstall-capi
CHECK_TARGETS     += nocgo-check check-front-gen capi-werror check-hardening-capi check-capi-flags ctest-check ctest-asan
DEMO_TARGETS      += capi-demo
BENCH_TARGETS     += capi-bench

.PHONY: capi-bench capi capi-engine install-capi uninstall-capi ctest-check ctest-valgrind ctest-asan capi-demo \
        nocgo-check capi-panic-engine capi-werror check-hardening-capi check-capi-flags \
        front-gen check-front-gen

# goimpl/ is pure Go: cgo lives only in the export layers (nal/, dc/, capi/).
nocgo-check:
	@bad=$$(CGO_ENABLED=1 $(GO) list -f '{{if .CgoFiles}}{{.ImportPath}}{{end}}' ./goimpl/...); \
	if [ -n "$$bad" ]; then echo "goimpl/ must be pure Go; these packages use cgo:"; echo "$$bad"; exit 1; fi
	@echo "nocgo-check: no goimpl/ package uses cgo"

# The front's generated files (capi/front/*_gen.*, dc/kinds_gen.go) from its
# table, capi/front/api.tab; they are committed: run this after editing it.
front-gen:
	$(GO) run ./capi/gen

# The table, the generated files, the public headers, the engine's Go
# exports (go tool cgo -exportheader of nal/, dc/, capi/) and the built
# libraries' exported functions agree (go test ./capi/gen shows each check
# failing on an altered copy).
check-front-gen: capi
	CGO_ENABLED=1 $(GO) run ./capi/gen -check -cgo -libs $(CAPI_LIB)

capi: capi-engine $(foreach l,$(CAPI_LIBS),$(CAPI_LIB)/lib$(l).so)

# No Go build id (-buildid=): it hashes the cgo package's directory, so two
# checkouts would differ in it and in the GNU build id derived from it.
capi-engine:
	@mkdir -p $(CAPI_LIB)/distcache
	@test -n "$(CAPI_ABI)" || { echo "no DCF_ENGINE_ABI in capi/front/engine.h"; exit 1; }
	CGO_ENABLED=1 CGO_CFLAGS='$(CAPI_CGO_CFLAGS)' CGO_LDFLAGS='$(CAPI_CGO_LDFLAGS)' \
	  $(GO) build -buildmode=c-shared $(GO_BUILDFLAGS) -ldflags='-s -w -buildid= $(GO_LDFLAGS_VERSION)' \
	  -o $(CAPI_ENGINE).tmp ./capi
	@if cmp -s $(CAPI_ENGINE).tmp $(CAPI_ENGINE); then rm -f $(CAPI_ENGINE).tmp $(CAPI_ENGINE:.so=.h).tmp; \
	 else mv $(CAPI_ENGINE).tmp $(CAPI_ENGINE); fi; rm -f $(CAPI_LIB)/distcache/*.h*

# The C suite's test engine: the same engine built with the
# distcache_panictest tag (nal/panictest.go), so that t_panic can make
# exports panic on purpose (DISTCACHE_TEST_PANIC). Never installed.
CAPI_PANIC_ENGINE := $(BUILD)/test/libdistcache-engine-panictest.so
capi-panic-engine:
	@mkdir -p $(BUILD)/test
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared $(GO_BUILDFLAGS) -tags distcache_panictest \
	  -ldflags='$(GO_LDFLAGS_VERSION)' -o $(CAPI_PANIC_ENGINE) ./capi
	@rm -f $(CAPI_PANIC_ENGINE:.so=.h)

$(BUILD)/capi/%.o: capi/front/%.c $(CAPI_FRONT_H)
	@mkdir -p $(@D)
	$(CC) $(CAPI_CPPFLAGS) $(CAPI_CFLAGS) -c $< -o $@

# make check's own compile of the front: every warning is an error.
capi-werror:
	@set -e; for f in capi/front/*.c; do \
	  $(CC) $(CAPI_CPPFLAGS) $(CAPI_CFLAGS) -Werror -fsyntax-only $$f; done
	@echo "capi-werror: the front compiles without a warning"

# The caller's CFLAGS, CPPFLAGS and LDFLAGS reach every compile and link of
# the front, after the hardening defaults; -Werror does not (make -n into a
# scratch tree).
check-capi-flags:
	@out=$$($(MAKE) --no-print-directory -n -B BUILD=$(BUILD)/flags-check \
	  CFLAGS=-DMARK_CFLAGS CPPFLAGS=-DMARK_CPPFLAGS LDFLAGS=-Wl,-O1,--mark-ldflags \
	  $(foreach l,$(CAPI_LIBS),$(BUILD)/flags-check/lib/lib$(l).so.$(CAPI_VER))); \
	cc=$$(echo "$$out" | grep -- ' -c capi/front/'); ld=$$(echo "$$out" | grep -- ' -shared '); \
	[ -n "$$cc" ] && [ -n "$$ld" ] || { echo "check-capi-flags: no compile or link commands"; exit 1; }; \
	! echo "$$cc" | grep -v -- '-DMARK_CFLAGS' | grep -q . || { echo "check-capi-flags: CFLAGS not used"; exit 1; }; \
	! echo "$$cc" | grep -v -- '-fstack-protector-strong' | grep -q . || { echo "check-capi-flags: no stack protector"; exit 1; }; \
	! echo "$$cc" | grep -v -- '-D_FORTIFY_SOURCE=2 -DMARK_CPPFLAGS' | grep -q . || { echo "check-capi-flags: CPPFLAGS not used after the hardening"; exit 1; }; \
	! echo "$$ld" | grep -v -- '-Wl,-z,now -Wl,-O1,--mark-ldflags' | grep -q . || { echo "check-capi-flags: LDFLAGS not used"; exit 1; }; \
	! echo "$$out" | grep -q -- '-Werror' || { echo "check-capi-flags: -Werror outside make check"; exit 1; }
	@echo "check-capi-flags: CFLAGS, CPPFLAGS, LDFLAGS honoured; hardening first; no -Werror"

# The libraries and the engine as built: stack protector, fortified libc
# calls, full RELRO, immediate binding, stack clash protection
# (hardening-check, from devscripts). Not CET: the front's objects carry
# it, but the linked library loses the marking because glibc's own start
# files (crti.o) lack it on Debian 12, and Go code has none. No function of
# libdistcacheserver has a local array or a local whose address is taken,
# so -fstack-protector-strong (checked by check-capi-flags) instruments none
# there, and hardening-check cannot see it.
check-hardening-capi: capi
	@command -v hardening-check >/dev/null || { echo "check-hardening-capi: hardening-check missing (apt-get install devscripts)"; exit 1; }
	hardening-check --quiet --nocfprotection $(CAPI_LIB)/libnal.so.$(CAPI_VER) \
	  $(CAPI_LIB)/libdistcache.so.$(CAPI_VER) $(CAPI_ENGINE)
	hardening-check --quiet --nocfprotection --nostackprotector $(CAPI_LIB)/libdistcacheserver.so.$(CAPI_VER)
	@echo "check-hardening-capi: ok"

# libnal's one private symbol, in a version node named after the shared
# table's version (DCF_SHARED_VERSION in capi/front/engine.h).
comma := ,
CAPI_SHARED_VERSION := $(shell sed -n 's/^\#define DCF_SHARED_VERSION \([0-9][0-9]*\)$$/\1/p' capi/front/engine.h)
$(BUILD)/capi/libnal.map: capi/front/engine.h mk/capi.mk
	@mkdir -p $(@D)
	@test -n "$(CAPI_SHARED_VERSION)" || { echo "no DCF_SHARED_VERSION in capi/front/engine.h"; exit 1; }
	printf 'DISTCACHE_GO_FRONT_%s {\n\tglobal: dcf_front_shared;\n};\n' $(CAPI_SHARED_VERSION) > $@

define capi_lib
$(CAPI_LIB)/lib$(1).so.$(CAPI_VER): $(addprefix $(BUILD)/capi/,$(2)) $(3)
	@mkdir -p $$(@D)
	$(CC) $(CAPI_CFLAGS) $(CAPI_LDFLAGS) -shared -Wl,-soname,lib$(1).so.1 -Wl,-z,defs -Wl,-rpath,'$$$$ORIGIN' \
	  -o $$@ $(addprefix $(BUILD)/capi/,$(2)) -L$(CAPI_LIB) -Wl,--as-needed $(4) -ldl -lpthread
$(CAPI_LIB)/lib$(1).so: $(CAPI_LIB)/lib$(1).so.$(CAPI_VER)
	ln -sf lib$(1).so.$(CAPI_VER) $(CAPI_LIB)/lib$(1).so.1
	ln -sf lib$(1).so.1 $$@
endef
$(eval $(call capi_lib,nal,loader.o nal.o nal_gen.o common.o,$(BUILD)/capi/libnal.map,-Wl$(comma)--version-script=$(BUILD)/capi/libnal.map))
$(eval $(call capi_lib,distcache,dc_client.o dc_client_gen.o wire.o nearmap.o target.o shared_client.o common.o,$(CAPI_LIB)/libnal.so,-lnal))
$(eval $(call capi_lib,distcacheserver,dc_server.o dc_server_gen.o shared_client.o common.o,$(CAPI_LIB)/libnal.so,-lnal))

install-capi: capi
	install -d $(DESTDIR)$(LIBDIR)/distcache $(DESTDIR)$(LIBDIR)/pkgconfig \
	  $(DESTDIR)$(INCDIR)/libnal $(DESTDIR)$(INCDIR)/distcache
	@set -e; for l in $(CAPI_LIBS); do \
	  install -m 0644 $(CAPI_LIB)/lib$$l.so.$(CAPI_VER) $(DESTDIR)$(LIBDIR)/; \
	  ln -sf lib$$l.so.$(CAPI_VER) $(DESTDIR)$(LIBDIR)/lib$$l.so.1; \
	  ln -sf lib$$l.so.1 $(DESTDIR)$(LIBDIR)/lib$$l.so; \
	  sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	      -e 's|@VERSION@|$(CAPI_PCVER)|' pkgconfig/$$( [ $$l = nal ] && echo libnal || echo $$l ).pc.in \
	      > $(DESTDIR)$(LIBDIR)/pkgconfig/$$( [ $$l = nal ] && echo libnal || echo $$l ).pc; \
	done
	install -m 0644 $(CAPI_ENGINE) $(DESTDIR)$(LIBDIR)/distcache/
	@set -e; for h in $(CAPI_HEADERS); do install -m 0644 include/$$h $(DESTDIR)$(INCDIR)/$$h; done

uninstall-capi:
	@for l in $(CAPI_LIBS); do \
	  rm -f $(DESTDIR)$(LIBDIR)/lib$$l.so.$(CAPI_VER) $(DESTDIR)$(LIBDIR)/lib$$l.so.1 $(DESTDIR)$(LIBDIR)/lib$$l.so; \
	done
	rm -f $(DESTDIR)$(LIBDIR)/pkgconfig/libnal.pc $(DESTDIR)$(LIBDIR)/pkgconfig/distcache.pc \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/distcacheserver.pc $(DESTDIR)$(LIBDIR)/distcache/$(CAPI_ENGINE_NAME)
	rm -f $(addprefix $(DESTDIR)$(INCDIR)/,$(CAPI_HEADERS))
	-rmdir $(DESTDIR)$(LIBDIR)/distcache $(DESTDIR)$(INCDIR)/libnal $(DESTDIR)$(INCDIR)/distcache 2>/dev/null

# The C suite runs against a copy installed into a scratch DESTDIR.
ctest-check: capi tools capi-panic-engine
	rm -rf $(CTEST_ROOT)
	$(MAKE) --no-print-directory install-capi DESTDIR=$(CTEST_ROOT) PREFIX=$(CTEST_PREFIX) \
	  LIBDIR=$(CTEST_PREFIX)/lib INCDIR=$(CTEST_PREFIX)/include
	ROOT=$(CTEST_ROOT) PREFIX=$(CTEST_PREFIX) DC_BIN=$(BUILD)/bin SRC=$(CURDIR) PANIC_ENGINE=$(CAPI_PANIC_ENGINE) \
	  OUT=$(BUILD)/ctests ./ctests/run.sh

# The same suite under valgrind memcheck (not part of check: slow).
ctest-valgrind: capi tools capi-panic-engine
	rm -rf $(CTEST_ROOT)
	$(MAKE) --no-print-directory install-capi DESTDIR=$(CTEST_ROOT) PREFIX=$(CTEST_PREFIX) \
	  LIBDIR=$(CTEST_PREFIX)/lib INCDIR=$(CTEST_PREFIX)/include
	VALGRIND=1 ROOT=$(CTEST_ROOT) PREFIX=$(CTEST_PREFIX) DC_BIN=$(BUILD)/bin SRC=$(CURDIR) PANIC_ENGINE=$(CAPI_PANIC_ENGINE) \
	  OUT=$(BUILD)/ctests-vg ./ctests/run.sh

# The whole suite with the front and the test programs under AddressSanitizer
# (separate build tree; leak detection off: the Go runtime's allocations are
# not tracked and intentionally long-lived).
ctest-asan: tools capi-panic-engine
	$(MAKE) --no-print-directory capi BUILD=$(BUILD)/asan CAPI_SAN=-fsanitize=address CAPI_WERROR=-Werror
	rm -rf $(BUILD)/asan/root
	$(MAKE) --no-print-directory install-capi BUILD=$(BUILD)/asan CAPI_SAN=-fsanitize=address \
	  DESTDIR=$(BUILD)/asan/root PREFIX=$(CTEST_PREFIX) LIBDIR=$(CTEST_PREFIX)/lib INCDIR=$(CTEST_PREFIX)/include
	CC="$(CC) -fsanitize=address" ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 \
	  ROOT=$(BUILD)/asan/root PREFIX=$(CTEST_PREFIX) DC_BIN=$(BUILD)/bin SRC=$(CURDIR) PANIC_ENGINE=$(CAPI_PANIC_ENGINE) \
	  OUT=$(BUILD)/asan/ctests ./ctests/run.sh

capi-demo: capi tools
	rm -rf $(BUILD)/demo-root
	$(MAKE) --no-print-directory install-capi DESTDIR=$(BUILD)/demo-root PREFIX=/usr/local \
	  LIBDIR=/usr/local/lib INCDIR=/usr/local/include
	ROOT=$(BUILD)/demo-root PREFIX=/usr/local DC_BIN=$(BUILD)/bin OUT=$(BUILD)/demo-c ./ctests/demo.sh

capi-bench: capi tools
	rm -rf $(BUILD)/bench-root
	$(MAKE) --no-print-directory install-capi DESTDIR=$(BUILD)/bench-root PREFIX=/usr/local \
	  LIBDIR=/usr/local/lib INCDIR=/usr/local/include
	ROOT=$(BUILD)/bench-root PREFIX=/usr/local DC_BIN=$(BUILD)/bin OUT=$(BUILD)/bench-c ./ctests/bench.sh
	@if [ -z "$(ORIG)" ]; then echo "capi-bench: C libraries vs the original skipped (ORIG=/prefix of a distcache 1.5 installation)"; \
	else ROOT=$(BUILD)/bench-root PREFIX=/usr/local DC_BIN=$(BUILD)/bin ORIG="$(ORIG)" OUT=$(BUILD)/bench-vsorig \
	  ./ctests/vsorig.sh; fi
