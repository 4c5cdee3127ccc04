# SPDX-License-Identifier: Apache-2.0
# distcache-go — top-level build.
#
#   make            build everything: the Go tools, the C libraries and their
#                   engine (no test, nothing needing root)
#   make check      everything CI runs: go vet, go test -race, short fuzzing,
#                   then every test fragment registered in mk/*.mk (the
#                   end-to-end tests with Apache and stunnel are only here)
#   make demo       run a dc_server + dc_client + dc_test session end to end
#   make bench      benchmarks (not part of check)
#   make install    PREFIX=/usr/local DESTDIR= (works as a normal user into a
#                   DESTDIR; make uninstall reverses it)
#
# Each part of the project adds its own targets in mk/<part>.mk and appends
# to ALL_TARGETS, CHECK_TARGETS, DEMO_TARGETS, BENCH_TARGETS,
# INSTALL_TARGETS and UNINSTALL_TARGETS, so that parts can grow independently.
#
# Build flags: GOFLAGS, CGO_CFLAGS, CGO_LDFLAGS ... are read by the go command
# from the environment (or make's command line) as usual; GO_LDFLAGS adds
# linker flags to the Go tools; CFLAGS, CPPFLAGS and LDFLAGS are for the C
# parts (mk/capi.mk).

# `make` with no target builds; the fragments included below must not
# change that, whatever their first rule is.
.DEFAULT_GOAL := all

GO       ?= go
PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   ?= $(PREFIX)/bin
LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
MANDIR   ?= $(PREFIX)/share/man
BUILD    ?= $(CURDIR)/build
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system

# The one project version (VERSION), stamped into every Go binary: the tools
# and the C libraries' engine print it (goimpl/version).
VERSION := $(shell cat $(CURDIR)/VERSION)
GO_LDFLAGS_VERSION := -X github.com/distcache-go/distcache/goimpl/version.Version=$(VERSION)
# Every Go build: no build paths (-trimpath) and no VCS stamp, so that two
# checkouts in different directories (or a tarball) build identical files.
GO_BUILDFLAGS := -trimpath -buildvcs=false
# The tools: pure Go, position independent, full RELRO (-bindnow), with a
# GNU build id derived from Go's (for debug symbol packages).
GO_LDFLAGS ?=
TOOLS_LDFLAGS := -bindnow -B gobuildid $(GO_LDFLAGS_VERSION) $(GO_LDFLAGS)
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report a spurious "context deadline exceeded" failure as the time runs out
# (golang/go#75804). 60000 runs take 3–10 s per target here.
FUZZTIME ?= 60000x

TOOLS := dc_server dc_client dc_test dc_snoop

ALL_TARGETS       := tools
CHECK_TARGETS     :=
DEMO_TARGETS      :=
BENCH_TARGETS     := go-bench
INSTALL_TARGETS   := install-tools
UNINSTALL_TARGETS := uninstall-tools

.PHONY: all tools check go-check go-vet go-test fuzz demo bench go-bench \
        install uninstall install-tools uninstall-tools clean

-include mk/*.mk

all: $(ALL_TARGETS)

tools:
	@mkdir -p $(BUILD)/bin
	@for t in $(TOOLS); do \
	  if [ -d cmd/$$t ]; then CGO_ENABLED=0 $(GO) build $(GO_BUILDFLAGS) -buildmode=pie \
	    -ldflags='$(TOOLS_LDFLAGS)' -o $(BUILD)/bin/$$t ./cmd/$$t || exit 1; fi; \
	done

check: go-check $(CHECK_TARGETS)
	@echo "make check: all passed"

go-check: go-vet go-test fuzz

go-vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || \
	  { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

# Files tests keep (t.ArtifactDir: the status page screenshots of
# cmd/internal/metricstest) go under $(BUILD)/test-output/_artifacts.
go-test: tools
	@mkdir -p $(BUILD)/test-output
	DC_BIN=$(BUILD)/bin $(GO) test -race -count=1 -artifacts -outputdir $(BUILD)/test-output ./...

# Each fuzz target runs FUZZTIME inputs: its committed seed corpus plus
# what it discovers.  scripts/fuzz-all lists the targets.
fuzz:
	@./scripts/fuzz-all $(FUZZTIME)

demo: all $(DEMO_TARGETS)
	@./scripts/demo $(BUILD)/bin

bench: all $(BENCH_TARGETS)

go-bench:
	$(GO) test -run '^$$' -bench . -benchmem ./goimpl/...

install: all $(INSTALL_TARGETS)

uninstall: $(UNINSTALL_TARGETS)

install-tools: tools
	install -d $(DESTDIR)$(BINDIR)
	@for t in $(TOOLS); do \
	  if [ -f $(BUILD)/bin/$$t ]; then install -m 0755 $(BUILD)/bin/$$t $(DESTDIR)$(BINDIR)/$$t; fi; \
	done

uninstall-tools:
	@for t in $(TOOLS); do rm -f $(DESTDIR)$(BINDIR)/$$t; done

clean:
	rm -rf $(BUILD)
