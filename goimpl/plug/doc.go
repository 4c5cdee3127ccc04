// SPDX-License-Identifier: Apache-2.0

// Package plug is the DC_PLUG message layer (DC_PLUG_new(3)): it
// turns the byte stream of one nal.Connection into whole, defragmented
// distcache messages and back, using the frame format of package proto.
// A plug has an independent read half (EMPTY → IO → FULL → USER) and write
// half (EMPTY → USER → IO).
//
// C function → Go:
//
//	DC_PLUG_new(conn, flags)               New(conn, flags)
//	DC_PLUG_free(p)                        p.Free()
//	DC_PLUG_to_select(p, sel)              p.ToSelect(sel)
//	DC_PLUG_from_select(p)                 p.FromSelect()
//	DC_PLUG_io(p)                          p.IO()
//	DC_PLUG_read(p, resume, &uid, &cmd,    uid, cmd, payload, ok := p.Read(resume != 0)
//	             &data, &len)              (payload is non-nil even when empty; stable until Consume/Free)
//	DC_PLUG_consume(p)                     p.Consume()
//	DC_PLUG_write(p, resume, uid, cmd,     p.Write(resume != 0, uint32(uid), cmd, data[:len])
//	              data, len)
//	DC_PLUG_write_more(p, data, len)       p.WriteMore(data[:len])
//	DC_PLUG_commit(p)                      p.Commit()
//	DC_PLUG_rollback(p)                    p.Rollback()
//
// Commands use the C API numbering (Cmd*: ADD=1 … HAVE=4, 0 = error); the
// wire operation is that value minus one (proto.Op).
//
// Differences from distcache 1.5 (doc/EDGES.md):
//
//   - A frame is decoded only when all 14+len bytes are present (E-2).
//   - Write refuses a command outside 1..4, so Commit can never leave the
//     write half stuck (E-37).
//   - Payload storage is the plug's own, independent of the connection's
//     buffer sizes. Incoming bytes are moved out of the connection's read
//     buffer into the plug, so any read buffer size works. Outgoing frames
//     are placed whole into the send buffer when they fit, as the original
//     did (an original receiver mis-handles frames split near their end,
//     E-2); only when the send buffer is smaller than a frame, so that it
//     could never hold it whole, is the frame written progressively in
//     pieces. Tiny buffers are therefore slow but never stall.
//   - WriteBusy reports a committed message still being encoded: while it
//     is true Write fails (as in the original), so a server that pipelines
//     must leave the next request unconsumed until WriteBusy is false
//     (E-4, E-5).
//   - Free on nil and every method on a freed plug return the failure value
//     instead of crashing.
//
// Concurrency: a plug and its connection are used by one goroutine at a
// time (like the C API).
package plug
