// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Every test of this package runs over TransportCaller, the transport the
// C library uses. TestNetTransport runs them all again, in a child test
// binary, over TransportNet (goimpl/client's).
const transportEnv = "DCCTX_TEST_TRANSPORT"

func init() {
	if os.Getenv(transportEnv) == "net" {
		defaultTransport = TransportNet
	}
}

func TestNetTransport(t *testing.T) {
	if os.Getenv(transportEnv) != "" {
		t.Skip("already the child run")
	}
	if testing.Short() {
		t.Skip("-short: one transport only")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run", "^Test", "-test.skip", "^TestNetTransport$")
	cmd.Env = append(os.Environ(), transportEnv+"=net")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("the tests over TransportNet failed: %v\n%s", err, out)
	}
}

func TestTransportOfNew(t *testing.T) {
	if got := (&Options{}).resolved().Transport; got != defaultTransport || (os.Getenv(transportEnv) == "" && got != TransportCaller) {
		t.Fatalf("default transport %d", got)
	}
	if got := (&Options{Transport: TransportNet}).resolved().Transport; got != TransportNet {
		t.Fatalf("TransportNet resolved to %d", got)
	}
}
