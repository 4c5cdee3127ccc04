// SPDX-License-Identifier: Apache-2.0

// Package nal is the libnal object model in pure Go (the NAL_*(3) man pages):
// addresses, bounded FIFO buffers, non-blocking connections, listeners
// and selectors on golang.org/x/sys/unix (no cgo, no net package sockets),
// plus the big-endian codec helpers. It mirrors the C API of <libnal/nal.h>
// one to one so that the cgo layer can export each function as a thin
// wrapper; deviations from distcache 1.5 are the fixes listed in
// doc/EDGES.md and noted on each method.
//
// Concurrency: like libnal, objects are not safe for concurrent use; a
// selector and the objects bound to it must be used by one goroutine at a
// time. Different object families may be used concurrently. The only
// process-wide state is ConfigSetNagle and SetAllocator.
//
// The address grammar (grammar.go: Parse, Spec, ParseTarget) is the one
// every part of the project uses: NAL_ADDRESS_create, client contexts, the
// daemons' options; the C front's DC_CTX_new pre-check mirrors
// ParseTarget, and testdata/addresses.txt is the corpus both are tested
// against (TestAddressCorpus here, ctests/t_addr.c in the C suite).
//
// No method panics on misuse: nil receivers, freed or unused objects give
// the C failure value (false, 0 or nil). Free is safe twice.
//
// C function → Go:
//
//	NAL_config_set_nagle(e)                ConfigSetNagle(e != 0)
//	NAL_ADDRESS_new()                      NewAddress()
//	NAL_ADDRESS_free(a)                    a.Free()
//	NAL_ADDRESS_reset(a)                   a.Reset()
//	NAL_ADDRESS_create(a, s, n)            a.Create(s, n)
//	NAL_ADDRESS_get_def_buffer_size(a)     a.DefBufferSize()
//	NAL_ADDRESS_set_def_buffer_size(a, n)  a.SetDefBufferSize(n)
//	NAL_ADDRESS_can_connect(a)             a.CanConnect()
//	NAL_ADDRESS_can_listen(a)              a.CanListen()
//	NAL_BUFFER_new()                       NewBuffer()
//	NAL_BUFFER_free(b)                     b.Free()
//	NAL_BUFFER_reset(b)                    b.Reset()
//	NAL_BUFFER_set_size(b, n)              b.SetSize(n)
//	NAL_BUFFER_empty/full/notempty/notfull b.Empty() b.Full() b.NotEmpty() b.NotFull()
//	NAL_BUFFER_used/unused/size            b.Used() b.Unused() b.Size()
//	NAL_BUFFER_data(b)                     b.Data() (slice at offset 0; &b.Storage()[0] is the C pointer)
//	NAL_BUFFER_write(b, p, n)              b.Write(p[:n])
//	NAL_BUFFER_read(b, p, n)               b.Read(p[:n]), or b.Discard(n) when p == NULL
//	NAL_BUFFER_transfer(d, s, max)         d.TransferFrom(s, max)
//	NAL_BUFFER_write_ptr(b)                b.WritePtr() (slice of length Unused())
//	NAL_BUFFER_wrote(b, n)                 b.Wrote(n) (false instead of an assert if n > Unused())
//	NAL_CONNECTION_new()                   NewConnection()
//	NAL_CONNECTION_free(c)                 c.Free()
//	NAL_CONNECTION_reset(c)                c.Reset()
//	NAL_CONNECTION_create(c, a)            c.Create(a)
//	NAL_CONNECTION_accept(c, l)            c.Accept(l)
//	NAL_CONNECTION_create_pair(c, c2, n)   c.CreatePair(c2, n)
//	NAL_CONNECTION_set_size(c, n)          c.SetSize(n)
//	NAL_CONNECTION_get_read[_c](c)         c.Read()
//	NAL_CONNECTION_get_send[_c](c)         c.Send()
//	NAL_CONNECTION_io(c)                   c.IO()
//	NAL_CONNECTION_is_established(c)       c.IsEstablished()
//	NAL_CONNECTION_add_to_selector(c, s)   c.AddToSelector(s)
//	NAL_CONNECTION_del_from_selector(c)    c.DelFromSelector()
//	NAL_LISTENER_new()                     NewListener()
//	NAL_LISTENER_free(l)                   l.Free()
//	NAL_LISTENER_reset(l)                  l.Reset()
//	NAL_LISTENER_create(l, a)              l.Create(a)
//	NAL_LISTENER_add_to_selector(l, s)     l.AddToSelector(s)
//	NAL_LISTENER_del_from_selector(l)      l.DelFromSelector()
//	NAL_LISTENER_finished(l)               l.Finished()
//	NAL_LISTENER_set_fs_owner(l, o, g)     l.SetFSOwner(o, g) (*string; nil or "" = unchanged)
//	NAL_LISTENER_set_fs_perms(l, s)        l.SetFSPerms(s)
//	NAL_SELECTOR_new()                     NewSelector()
//	NAL_SELECTOR_new_fdselect()            NewSelectorFdSelect()
//	NAL_SELECTOR_new_fdpoll()              NewSelectorFdPoll()
//	NAL_SELECTOR_free(s)                   s.Free()
//	NAL_SELECTOR_reset(s)                  s.Reset()
//	NAL_SELECTOR_select(s, usec, use)      s.Select(usec, use != 0) → (n, errno); set errno only if err != nil
//	NAL_SELECTOR_num_objects(s)            s.NumObjects()
//	NAL_decode_uint32(&p, &len, &v)        v, rest, ok := DecodeUint32(p[:len]) (advance by len - len(rest))
//	NAL_decode_uint16/char/bin             DecodeUint16, DecodeChar, DecodeBin(p, dst)
//	NAL_encode_uint32/uint16/char/bin      EncodeUint32(p, v) (rest, ok), EncodeUint16, EncodeChar, EncodeBin
//
// Buffer storage comes from SetAllocator's functions (Go memory by
// default); the cgo layer installs C malloc/free so that C may keep the
// pointers behind Data and WritePtr.
//
// Differences from distcache 1.5 (doc/EDGES.md): IPv6: addresses (see
// Parse); unix paths of 108+ bytes rejected, only sockets are
// unlinked before bind (E-29); IPPROTO_TCP used directly (E-30);
// EAGAIN/EINTR are not death, readiness is consumed by IO, output is
// flushed once on EOF, MSG_NOSIGNAL on sockets (E-12, E-26, E-32); FD:
// transport fixes and Finished semantics (E-27); failed accept does not
// wedge the listener (E-25); no selector limits, Free/Reset unbind
// (E-24, E-40); Wrote beyond capacity refused (E-7); descriptors are
// close-on-exec.
package nal
