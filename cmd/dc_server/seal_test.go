// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/redisstore/redistest"
)

// dc_server -sealkey with a Redis backend: Redis holds only sealed
// entries, which this dc_server opens and which an entry altered in Redis
// (here through a dc_server without the key) does not.
func TestSealedRedisBackend(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	keys := tooltest.TempDir(t) + "/seal.keys"
	if err := os.WriteFile(keys, []byte("r1 "+strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sealed, sock := start(t, "-backend", "redis://"+srv.Addr(), "-redistimeout", "2000", "-sealkey", keys)
	_, rawSock := start(t, "-backend", "redis://"+srv.Addr(), "-redistimeout", "2000")
	c, raw := tooltest.Dial(t, "unix", sock), tooltest.Dial(t, "unix", rawSock)
	secret := []byte("MASTER-SECRET-of-a-stunnel-session")
	id := []byte("sealed-" + time.Now().Format("150405.000000"))
	if m := tooltest.RoundTrip(t, c, 1, proto.OpAdd, tooltest.AddPayload(60000, id, secret)); !bytes.Equal(m.Payload, []byte{0}) {
		t.Fatalf("ADD: %x", m.Payload)
	}
	if m := tooltest.RoundTrip(t, c, 2, proto.OpGet, id); !bytes.Equal(m.Payload, secret) {
		t.Fatalf("GET through the sealing dc_server: %q", m.Payload)
	}
	stored := tooltest.RoundTrip(t, raw, 3, proto.OpGet, id).Payload
	if len(stored) != len(secret)+44 || bytes.Contains(stored, []byte("MASTER")) {
		t.Fatalf("Redis holds %d bytes %q, want %d sealed bytes", len(stored), stored, len(secret)+44)
	}
	if vals, err := srv.Do("KEYS", "*"); err != nil || vals == "" {
		t.Fatalf("no keys in Redis: %v", err)
	}
	flipped := append([]byte(nil), stored...)
	flipped[len(flipped)-1] ^= 0x80
	tooltest.RoundTrip(t, raw, 4, proto.OpRemove, id)
	tooltest.RoundTrip(t, raw, 5, proto.OpAdd, tooltest.AddPayload(60000, id, flipped))
	if m := tooltest.RoundTrip(t, c, 6, proto.OpGet, id); !bytes.Equal(m.Payload, []byte{proto.ResultNotOK}) {
		t.Fatalf("altered entry: GET answered %q, want a miss", m.Payload)
	}
	sealed.WaitOutput("did not open, answered as a miss", 10*time.Second)
}
