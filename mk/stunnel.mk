# SPDX-License-Identifier: Apache-2.0
# stunnel end-to-end test (issue 6): two stunnel servers with
# "sessiond = <dc_server -sessiond address>" and "options = NO_TICKET"
# resume each other's TLS 1.2 sessions, 200 times, 4 at a time; a pair
# without sessiond is the negative control.  Needs stunnel4, openssl and
# socat (.ci/packages.d/stunnel.txt); skips with a message when absent.

CHECK_TARGETS += stunnel-check

.PHONY: stunnel-check

stunnel-check: tools
	./tests/stunnel/run.sh $(BUILD)/bin
