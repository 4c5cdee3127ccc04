#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# CI setup for the Apache httpd end-to-end test (tests/apache/run.sh), run
# as root after the packages of .ci/packages.d/*.txt are installed.
#
# The test builds mod_socache_dc from Debian's apache2 source package, so
# apt needs deb-src entries for the same suites as the existing deb ones.
# This adds them (deb822 *.sources and one-line *.list formats alike) and
# refreshes the index.  Idempotent: an existing deb-src entry is left as is.
set -eu

have_src() {
  grep -qsE '^[[:space:]]*(Types:.*deb-src|deb-src[[:space:]])' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
}

if ! have_src; then
  out=/etc/apt/sources.list.d/distcache-deb-src.sources
  : >"$out.tmp"
  # Only Debian's own archives (a third-party repository may have no
  # sources, which would make apt-get update fail).
  # deb822: copy every Debian stanza whose Types has "deb", as deb-src.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush() {
        if (isdeb && isdebian && stanza != "") printf "%s\n", stanza
        stanza = ""; isdeb = 0; isdebian = 0
      }
      /^[[:space:]]*$/ { flush(); next }
      /^#/ { next }
      /^Types:/ {
        n = split($0, t, /[[:space:]]+/)
        for (i = 2; i <= n; i++) if (t[i] == "deb") isdeb = 1
        stanza = stanza "Types: deb-src\n"; next
      }
      /^URIs:/ && /\/debian/ { isdebian = 1 }
      { stanza = stanza $0 "\n" }
      END { flush() }
    ' "$f" >>"$out.tmp"
  done
  # one-line format: "deb [opts] uri suite comp..." -> deb-src.
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -n '/\/debian/s/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >>"$out.list.tmp"
  done 2>/dev/null || true
  if [ -s "$out.tmp" ]; then mv "$out.tmp" "$out"; else rm -f "$out.tmp"; fi
  if [ -s "$out.list.tmp" ]; then
    mv "$out.list.tmp" /etc/apt/sources.list.d/distcache-deb-src.list
  else
    rm -f "$out.list.tmp"
  fi
fi

apt-get update
