// SPDX-License-Identifier: Apache-2.0

package redisstore

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseAddr(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Addr
	}{
		{"redis://127.0.0.1:6380", Addr{Kind: Standalone, Hosts: []string{"127.0.0.1:6380"}}},
		{"redis://cache.example", Addr{Kind: Standalone, Hosts: []string{"cache.example:6379"}}},
		{"REDIS://alice@h:1/3", Addr{Kind: Standalone, Hosts: []string{"h:1"}, Username: "alice", DB: 3}},
		{"rediss://[::1]:7000/0", Addr{Kind: Standalone, TLS: true, Hosts: []string{"[::1]:7000"}}},
		{"redis-sentinel://a:1,b,[::1]/mymaster", Addr{Kind: Sentinel, Hosts: []string{"a:1", "b:26379", "[::1]:26379"}, Master: "mymaster"}},
		{"rediss-sentinel://u@a:1/m?db=2", Addr{Kind: Sentinel, TLS: true, Hosts: []string{"a:1"}, Username: "u", Master: "m", DB: 2}},
		{"redis-cluster://a:7000,b:7001", Addr{Kind: Cluster, Hosts: []string{"a:7000", "b:7001"}}},
		{"rediss-cluster://a", Addr{Kind: Cluster, TLS: true, Hosts: []string{"a:6379"}}},
	} {
		got, err := ParseAddr(c.in)
		if err != nil {
			t.Errorf("ParseAddr(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(*got, c.want) {
			t.Errorf("ParseAddr(%q) = %+v, want %+v", c.in, *got, c.want)
		}
		// String gives an address that parses to the same.
		again, err := ParseAddr(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseAddr(%q.String() = %q) = %+v, %v", c.in, got.String(), again, err)
		}
		if !IsAddr(c.in) {
			t.Errorf("IsAddr(%q) = false", c.in)
		}
	}
}

func TestParseAddrErrors(t *testing.T) {
	for _, in := range []string{
		"", "127.0.0.1:6379", "IP:127.0.0.1:6379", "UNIX:/tmp/x", "http://h:1", "redis://",
		"redis://h:0", "redis://h:65536", "redis://h:x", "redis://h:1/x", "redis://h:1/-1",
		"redis://a:1,b:2", "redis://::1:6379", "redis://[::1", "redis://[::1]x",
		"redis-sentinel://a:1", "redis-sentinel://a:1/", "redis-sentinel://a:1/m/x",
		"redis-sentinel://a:1/m?db=x", "redis-sentinel://a:1/m?tls=1", "redis://h/0?db=1",
		"redis-cluster://a:1/0", "redis-cluster://a:1,,b:2",
	} {
		if a, err := ParseAddr(in); err == nil {
			t.Errorf("ParseAddr(%q) = %+v, want an error", in, a)
		}
	}
	for _, in := range []string{"redis://u:secret@h:1", "redis://:secret@h", "redis-sentinel://u:p@a:1/m"} {
		if _, err := ParseAddr(in); !errors.Is(err, ErrPasswordInAddr) {
			t.Errorf("ParseAddr(%q): %v, want ErrPasswordInAddr", in, err)
		}
	}
	for _, in := range []string{"IP:h:1", "UNIX:/tmp/scache", "h:1", "redisx://h"} {
		if IsAddr(in) {
			t.Errorf("IsAddr(%q) = true", in)
		}
	}
}
