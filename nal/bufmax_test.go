// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"fmt"
	"os"
	"strings"
	"testing"

	gonal "github.com/distcache-go/distcache/goimpl/nal"
)

// The front sets a fresh buffer's size itself and refuses sizes above
// DCF_BUFFER_MAX (capi/front/engine.h): it must be the engine's limit.
func TestBufferMaxAgrees(t *testing.T) {
	h, err := os.ReadFile("../capi/front/engine.h")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("#define DCF_BUFFER_MAX %d\n", gonal.BufferMaxSize)
	if !strings.Contains(string(h), want) {
		t.Fatalf("capi/front/engine.h lacks %q (goimpl/nal BufferMaxSize)", strings.TrimSpace(want))
	}
}
