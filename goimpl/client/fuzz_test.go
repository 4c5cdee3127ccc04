package client

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// FuzzParseTarget checks the address parser on arbitrary strings without
// touching DNS (host names resolve to fixed addresses): it never panics,
// every accepted address is one a net.Dialer understands, and the forms a
// client cannot connect to are never accepted.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"IP:127.0.0.1:9001", "IPv4:localhost:5555", "IP:9001", "IP::9001", "IP: +80",
		"IP:1.2.3.4:5:6", "IPv6:[::1]:80", "IPv6:[fe80::1%lo]:80", "IPv6:9001",
		"UNIX:/tmp/s", "UNIX:", "FD:0", "FD:3:4", "ip:1", "I", "",
	} {
		f.Add(s)
	}
	fake := func(_ context.Context, host, network string) (netip.Addr, error) {
		if ip, err := netip.ParseAddr(host); err == nil {
			return ip.Unmap(), nil
		}
		if network == "ip4" {
			return netip.MustParseAddr("192.0.2.1"), nil
		}
		return netip.MustParseAddr("2001:db8::1"), nil
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := parseTargetSyntax(t.Context(), s, fake)
		if err != nil {
			return
		}
		if len(s) < 2 || len(s) > maxTargetLen || strings.HasPrefix(s, "FD:") {
			t.Fatalf("%q accepted", s)
		}
		switch tg.network {
		case "unix":
			if !strings.HasPrefix(s, "UNIX:") || len(tg.addr) >= unixPathMax {
				t.Fatalf("%q -> %+v", s, tg)
			}
		case "tcp4", "tcp6":
			ap, err := netip.ParseAddrPort(tg.addr)
			if err != nil || (tg.network == "tcp4") != ap.Addr().Is4() {
				t.Fatalf("%q -> %+v (%v)", s, tg, err)
			}
			if _, err := net.ResolveTCPAddr(tg.network, tg.addr); err != nil {
				t.Fatalf("%q -> %+v: %v", s, tg, err)
			}
		default:
			t.Fatalf("%q -> network %q", s, tg.network)
		}
	})
}

// FuzzResponse answers a GET with a response of fuzzed operation and
// payload, followed by fuzzed extra bytes: the client never panics or
// hangs, and it succeeds exactly when the spec says it must.
func FuzzResponse(f *testing.F) {
	f.Add(byte(1), []byte("SESSDATA"), []byte(nil))
	f.Add(byte(1), []byte{1}, []byte(nil))
	f.Add(byte(1), []byte{}, []byte(nil))
	f.Add(byte(3), []byte{0}, []byte(nil))
	f.Add(byte(1), []byte("SESSDATA"), []byte{0, 0x11, 0, 0, 1})
	f.Add(byte(1), make([]byte, 5000), []byte{0, 0x10, 0, 0, 0})

	type answer struct {
		op    proto.Op
		pl    []byte
		extra []byte
	}
	answers := make(chan answer, 1)
	ln, err := net.Listen("unix", shortTempDir(f)+"/s")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rd := proto.NewReader(c, proto.WantRequests)
			m, err := rd.ReadMessage()
			a := <-answers
			if err == nil {
				out, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: m.UID, Op: a.op, Payload: a.pl})
				c.Write(append(out, a.extra...))
			}
			c.Close()
		}
	}()
	c, err := New("UNIX:"+ln.Addr().String(), 0, testOptions)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(c.Close)
	f.Fuzz(func(t *testing.T, op byte, payload, extra []byte) {
		if len(payload) > proto.MaxPayload {
			payload = payload[:proto.MaxPayload]
		}
		a := answer{proto.Op(op % 4), payload, extra}
		answers <- a
		buf := make([]byte, 64)
		used, ok := c.GetSession([]byte("fuzz-id"), buf)
		select { // not taken if the request never reached the server
		case <-answers:
		default:
		}
		// Extra bytes are detected when they arrive with the response
		// (always for small answers); a read that ends exactly at the
		// response boundary cannot see them.
		want := a.op == proto.OpGet && len(payload) >= minGetResponse
		if ok && !want || !ok && want && len(extra) == 0 {
			t.Fatalf("get ok = %v, want %v", ok, want)
		}
		if ok && (used != len(payload) || !bytes.Equal(buf[:min(used, len(buf))], payload[:min(used, len(buf))])) {
			t.Fatalf("get returned %d bytes %x", used, buf[:min(used, len(buf))])
		}
	})
}
