// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/proto/prototest"
)

func TestMain(m *testing.M) { tooltest.Main(m) }

// upstream answers every request with 0x01 (miss), except GET "big",
// answered with 5000 bytes.
func upstream(t *testing.T, path string) {
	prototest.Serve(t, path, func(m *proto.Message) ([]byte, bool) {
		if string(m.Payload) == "big" {
			return bytes.Repeat([]byte{7}, 5000), true
		}
		return []byte{1}, true
	})
}

func TestForwardsAndPrints(t *testing.T) {
	dir := tooltest.TempDir(t)
	upstream(t, dir+"/up")
	p := tooltest.Start(t, tooltest.Bin(t, "dc_snoop"), "-listen", "UNIX:"+dir+"/snoop", "-server", "UNIX:"+dir+"/up")
	tooltest.WaitDial(t, p, "unix", dir+"/snoop")

	// More than the original's 10 pairs at once, each served (connection 0
	// was WaitDial's probe).
	var conns []net.Conn
	for i := 0; i < 12; i++ {
		conns = append(conns, tooltest.Dial(t, "unix", dir+"/snoop"))
	}
	for i, c := range conns {
		m := tooltest.RoundTrip(t, c, uint32(1000+i), proto.OpHave, []byte{0xab, 0xcd, byte(i)})
		if !bytes.Equal(m.Payload, []byte{1}) {
			t.Fatalf("conn %d: payload %x", i, m.Payload)
		}
	}
	c := conns[0]
	m := tooltest.RoundTrip(t, c, 7, proto.OpGet, []byte("big"))
	if len(m.Payload) != 5000 {
		t.Fatalf("multi-frame response: %d bytes", len(m.Payload))
	}
	add := tooltest.AddPayload(300000, []byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte("SESSDATA"))
	tooltest.RoundTrip(t, c, 1, proto.OpAdd, add)

	for _, want := range []string{
		"SNOOP_DBG_MSG: connection 1, client->server, message completed (request_uid = 1000), total_len=17",
		"request op=HAVE complete=1 data_len=3 id=abcd00",
		"SNOOP_DBG_MSG: connection 12, server->client, message completed (request_uid = 1011), total_len=15",
		"response op=HAVE complete=1 data_len=1 result=0x01 (NOTOK)",
		"server->client, message completed (request_uid = 7), total_len=2062",
		"response op=GET complete=0 data_len=2048",
		"response op=GET complete=1 data_len=904 (continuation)",
		"request op=ADD complete=1 data_len=24 timeout=300000 id_len=8 id=0102030405060708 session_len=8",
	} {
		p.WaitOutput(want, 5*time.Second)
	}

	// Malformed traffic is reported and still forwarded unchanged.
	bad := tooltest.Dial(t, "unix", dir+"/snoop")
	bad.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	tooltest.ExpectClosed(t, bad, 5*time.Second) // the upstream drops it
	p.WaitOutput("malformed traffic", 5*time.Second)
	if !strings.Contains(p.Out.String(), hexOf("GET / HTTP")) {
		t.Errorf("malformed bytes not shown in hex")
	}
	// and the others keep working
	tooltest.RoundTrip(t, conns[5], 5, proto.OpRemove, []byte("x"))
	if p.Exited() {
		t.Fatal("dc_snoop exited")
	}
}

func hexOf(s string) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(digits[s[i]>>4])
		b.WriteByte(digits[s[i]&15])
	}
	return b.String()
}

func TestOptions(t *testing.T) {
	bin := tooltest.Bin(t, "dc_snoop")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-help"}, 0, "Usage: dc_snoop"},
		{[]string{"-listen", "UNIX:/tmp/x"}, 1, "Error, must provide -listen and -server"},
		{[]string{"-listen"}, 1, "Error, -listen requires an argument"},
		{[]string{"-what"}, 1, `Error, "-what" not recognised`},
		{[]string{"-listen", "IP:127.0.0.1:1", "-server", "IP:5"}, 1, "Error, bad server address"},
	} {
		code, out := tooltest.Run(t, 10*time.Second, bin, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, output %q; want %d, %q", tc.args, code, out, tc.code, tc.want)
		}
	}
}
