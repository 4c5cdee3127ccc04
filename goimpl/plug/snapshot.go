// SPDX-License-Identifier: Apache-2.0

package plug

import (
	"github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// State is a plug's complete state as plain values, for rebuilding it in
// a fresh engine after fork (the connection is exported separately by
// package nal). Byte slices are copies.
type State struct {
	Flags uint32

	ReadBuf     []byte // received, not yet decoded
	ReadState   ReadState
	ReadUID     uint32
	ReadOp      uint8
	ReadPayload []byte
	Corrupt     string // non-empty if the stream was judged corrupt

	WriteState   WriteState
	WriteUID     uint32
	WriteCmd     int
	WritePayload []byte
	WriteEnc     []byte // committed message, encoded
	WriteOff     int    // bytes of WriteEnc already in the send buffer
}

// Export returns p's state (zero value for nil or freed plugs).
func (p *Plug) Export() State {
	if !p.usable() {
		return State{}
	}
	st := State{
		Flags:   p.flags,
		ReadBuf: clone(p.rbuf), ReadState: p.rstate, ReadUID: p.ruid, ReadOp: uint8(p.rop), ReadPayload: clone(p.rpayload),
		WriteState: p.wstate, WriteUID: p.wuid, WriteCmd: p.wcmd, WritePayload: clone(p.wpayload),
		WriteEnc: clone(p.wenc), WriteOff: p.woff,
	}
	if p.corrupt != nil {
		st.Corrupt = p.corrupt.Error()
	}
	return st
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

type restoredError string

func (e restoredError) Error() string { return string(e) }

// Import rebuilds a plug over conn from st; nil if conn is nil or st is
// inconsistent.
func Import(conn *nal.Connection, st State) *Plug {
	p := New(conn, st.Flags)
	if p == nil || st.ReadState > ReadUser || st.WriteState > WriteIO ||
		len(st.ReadPayload) > proto.MaxPayload || len(st.WritePayload) > proto.MaxPayload ||
		st.WriteOff < 0 || st.WriteOff > len(st.WriteEnc) || !proto.Op(st.ReadOp).Valid() {
		return nil
	}
	if st.WriteState == WriteUser {
		if _, ok := proto.OpFromCmd(st.WriteCmd); !ok {
			return nil
		}
	}
	p.rbuf, p.rstate, p.ruid, p.rop = clone(st.ReadBuf), st.ReadState, st.ReadUID, proto.Op(st.ReadOp)
	p.rpayload = append(p.rpayload[:0], st.ReadPayload...)
	if st.Corrupt != "" {
		p.corrupt = restoredError(st.Corrupt)
	}
	p.wstate, p.wuid, p.wcmd = st.WriteState, st.WriteUID, st.WriteCmd
	p.wpayload, p.wenc, p.woff = clone(st.WritePayload), clone(st.WriteEnc), st.WriteOff
	return p
}
