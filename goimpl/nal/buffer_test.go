// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"bytes"
	"testing"
)

func TestBufferBasics(t *testing.T) {
	b := NewBuffer()
	if b.Size() != 0 || b.Used() != 0 || !b.Empty() || !b.Full() || b.NotEmpty() || b.NotFull() || b.Data() != nil || b.WritePtr() != nil {
		t.Fatal("new buffer: want size 0, empty and full, no storage")
	}
	if b.Write([]byte("x")) != 0 || b.Read(make([]byte, 1)) != 0 || b.Wrote(1) {
		t.Fatal("0-size buffer accepted data")
	}
	if !b.Wrote(0) {
		t.Fatal("Wrote(0) refused")
	}
	if b.SetSize(32769) || b.Size() != 0 {
		t.Fatal("size 32769 accepted")
	}
	if !b.SetSize(32768) || b.Size() != 32768 || b.Unused() != 32768 || !b.Empty() || b.Full() {
		t.Fatal("size 32768")
	}
	if n := b.Write([]byte("hello")); n != 5 || b.Used() != 5 || b.Unused() != 32763 || string(b.Data()) != "hello" {
		t.Fatalf("write: n=%d data=%q", n, b.Data())
	}
	// same size keeps data
	if !b.SetSize(32768) || string(b.Data()) != "hello" {
		t.Fatal("same-size set_size dropped data")
	}
	p := make([]byte, 2)
	if n := b.Read(p); n != 2 || string(p) != "he" || string(b.Data()) != "llo" {
		t.Fatalf("read: n=%d p=%q rest=%q", n, p, b.Data())
	}
	if &b.Data()[0] != &b.Storage()[0] {
		t.Fatal("data does not start at offset 0")
	}
	if n := b.Discard(1); n != 1 || string(b.Data()) != "lo" {
		t.Fatal("discard")
	}
	if n := b.Discard(100); n != 2 || !b.Empty() {
		t.Fatal("discard more than used")
	}
	// fill completely
	big := bytes.Repeat([]byte{7}, 40000)
	if n := b.Write(big); n != 32768 || !b.Full() || b.Write([]byte{1}) != 0 {
		t.Fatalf("fill: n=%d", n)
	}
	if len(b.WritePtr()) != 0 {
		t.Fatal("write ptr of full buffer not empty")
	}
	b.Reset()
	if !b.Empty() || b.Size() != 32768 {
		t.Fatal("reset")
	}
	// real size change discards
	b.Write([]byte("abc"))
	if !b.SetSize(10) || b.Used() != 0 || b.Size() != 10 {
		t.Fatal("resize kept data")
	}
	// write_ptr / wrote
	wp := b.WritePtr()
	if len(wp) != 10 {
		t.Fatalf("write ptr len %d", len(wp))
	}
	copy(wp, "0123456789")
	if !b.Wrote(4) || string(b.Data()) != "0123" {
		t.Fatal("wrote 4")
	}
	if b.Wrote(7) || b.Used() != 4 {
		t.Fatal("wrote beyond unused accepted")
	}
	if !b.Wrote(6) || !b.Full() || string(b.Data()) != "0123456789" {
		t.Fatal("wrote to full")
	}
	if !b.SetSize(0) || b.Size() != 0 || b.Storage() != nil {
		t.Fatal("size 0 keeps storage")
	}
	b.Free()
	b.Free()
	var nb *Buffer
	nb.Free()
	nb.Reset()
	if nb.SetSize(1) || nb.Write([]byte{1}) != 0 || nb.Used() != 0 || nb.Data() != nil || nb.Wrote(0) || !nb.Full() || !nb.Empty() {
		t.Fatal("nil buffer")
	}
}

func TestBufferTransfer(t *testing.T) {
	src, dst := NewBuffer(), NewBuffer()
	src.SetSize(100)
	dst.SetSize(8)
	src.Write([]byte("abcdefghijklmnop"))
	if n := dst.TransferFrom(src, 3); n != 3 || string(dst.Data()) != "abc" || string(src.Data()) != "defghijklmnop" {
		t.Fatalf("max 3: n=%d", n)
	}
	if n := dst.TransferFrom(src, 0); n != 5 || string(dst.Data()) != "abcdefgh" || string(src.Data()) != "ijklmnop" {
		t.Fatalf("no limit: n=%d", n)
	}
	if n := dst.TransferFrom(src, 0); n != 0 {
		t.Fatal("transfer into full buffer")
	}
	dst.Reset()
	src.Discard(6)
	if n := dst.TransferFrom(src, 0); n != 2 || string(dst.Data()) != "op" || !src.Empty() {
		t.Fatalf("limited by src: n=%d", n)
	}
	if dst.TransferFrom(dst, 0) != 0 || dst.TransferFrom(nil, 0) != 0 {
		t.Fatal("self/nil transfer")
	}
}

func TestBufferAllocator(t *testing.T) {
	var allocs, frees int
	var last []byte
	SetAllocator(func(n int) []byte {
		allocs++
		last = make([]byte, n)
		return last
	}, func(b []byte) {
		if &b[0] != &last[0] {
			t.Error("free got a different slice")
		}
		frees++
	})
	defer SetAllocator(nil, nil)
	b := NewBuffer()
	if !b.SetSize(16) || allocs != 1 || &b.Storage()[0] != &last[0] {
		t.Fatal("allocator not used")
	}
	b.SetSize(16)
	if allocs != 1 {
		t.Fatal("same size reallocated")
	}
	b.Free()
	if frees != 1 {
		t.Fatalf("frees = %d", frees)
	}
	SetAllocator(func(int) []byte { return nil }, nil)
	if b.SetSize(16) || b.Size() != 0 {
		t.Fatal("failed allocation reported success")
	}
}

func TestBufferAdopt(t *testing.T) {
	freed := 0
	free := func([]byte) { freed++ }
	b := NewBuffer()
	if b.Adopt(make([]byte, BufferMaxSize+1), free) {
		t.Fatal("adopted storage above BufferMaxSize")
	}
	if !b.Adopt(make([]byte, 8), free) || b.Size() != 8 || !b.Empty() {
		t.Fatalf("adopt: size %d used %d", b.Size(), b.Used())
	}
	if b.Adopt(make([]byte, 4), free) {
		t.Fatal("a buffer with storage adopted more")
	}
	if b.Write([]byte("0123456789")) != 8 || b.SetSize(16) != true || freed != 1 || b.Size() != 16 {
		t.Fatalf("after a new size: freed %d size %d", freed, b.Size())
	}
	c := NewBuffer()
	if !c.Adopt(nil, free) || c.Size() != 0 {
		t.Fatal("adopt of no storage")
	}
	c.Adopt(make([]byte, 2), free)
	c.Free()
	if freed != 2 {
		t.Fatalf("free released %d storages, want 2", freed)
	}
}
