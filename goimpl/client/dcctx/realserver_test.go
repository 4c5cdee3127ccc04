// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"bytes"
	"github.com/distcache-go/distcache/goimpl/client/internal/fake"
	"testing"

	"github.com/distcache-go/distcache/goimpl/server"
)

// The same exchanges against the server package's Handle and default cache.
func TestWithServerHandle(t *testing.T) {
	cache, err := server.NewDefaultCache(1000)
	if err != nil {
		t.Fatal(err)
	}
	s := fake.Start(t, "unix", "", &fake.Store{Real: cache})
	for _, fs := range flagSets {
		t.Run(fs.name, func(t *testing.T) {
			c := newCtx(t, s.Target, fs.flags, nil)
			id := []byte("handle-" + fs.name)
			data := bytes.Repeat([]byte("y"), 3000)
			if c.HasSession(id) != 0 || !c.AddSession(id, data, 500) || c.AddSession(id, data, 300000) {
				t.Fatal("has/add/duplicate add")
			}
			if got := s.LastTimeout.Load(); got != 300000 {
				t.Fatalf("a 500 ms add reached the server as %d ms", got)
			}
			buf := make([]byte, 10)
			if used, ok := c.GetSession(id, buf); !ok || used != len(data) || !bytes.Equal(buf, data[:10]) {
				t.Fatalf("get = %d, %v", used, ok)
			}
			full := make([]byte, len(data))
			if used, ok := c.RegetSession(id, full); !ok || used != len(data) || !bytes.Equal(full, data) {
				t.Fatal("reget")
			}
			if c.AddSession(bytes.Repeat([]byte{'i'}, 65), data, 300000) {
				t.Fatal("add with a 65-byte id succeeded (0x67)")
			}
			if !c.RemoveSession(id) || c.RemoveSession(id) || c.HasSession(id) != 0 {
				t.Fatal("remove")
			}
		})
	}
	hammerCtx(t, newCtx(t, s.Target, FlagPersistent, nil))
	hammerCtx(t, newCtx(t, s.Target, 0, nil))
}
