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
// binary, over TransportNet (goimpl/client's), and TestRawWait over
// TransportCaller with every exchange in the selector's raw mode (what the
// C library does while its caller is alone in the engine).
const transportEnv = "DCCTX_TEST_TRANSPORT"

func init() {
	switch os.Getenv(transportEnv) {
	case "net":
		defaultTransport = TransportNet
	case "raw":
		defaultRawWait = func() bool { return true }
	}
}

func TestNetTransport(t *testing.T) { rerun(t, "net") }

func TestRawWait(t *testing.T) { rerun(t, "raw") }

// rerun runs every test again in a child test binary with transportEnv
// set to mode.
func rerun(t *testing.T, mode string) {
	if os.Getenv(transportEnv) != "" {
		t.Skip("already a child run")
	}
	if testing.Short() {
		t.Skip("-short: one transport only")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run", "^Test", "-test.skip", "^(TestNetTransport|TestRawWait)$")
	cmd.Env = append(os.Environ(), transportEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("the tests with %s=%s failed: %v\n%s", transportEnv, mode, err, out)
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
