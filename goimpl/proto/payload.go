// SPDX-License-Identifier: Apache-2.0

package proto

import "encoding/binary"

// AddRequest is the decoded payload of an ADD request (doc/PROTOCOL.md §6).
type AddRequest struct {
	TimeoutMS uint32
	ID        []byte
	Data      []byte
}

// AppendAddRequest appends an ADD payload: u32 timeout, u32 id length, id,
// data. The timeout is truncated to 32 bits as the original does.
func AppendAddRequest(dst []byte, timeoutMS uint32, id, data []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, timeoutMS)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(id)))
	dst = append(dst, id...)
	return append(dst, data...)
}

// AddRequestSize is the payload size of an ADD with the given lengths.
func AddRequestSize(idLen, dataLen int) int { return 8 + idLen + dataLen }

// ParseAddRequest validates an ADD payload in the order of the original
// server. If the payload is shorter than 8 bytes, ok is false: the original
// closes the connection without answering. Otherwise code is the response
// byte the server owes if validation fails, or ResultOK when the request is
// well formed and the cache should be asked.
func ParseAddRequest(p []byte) (req AddRequest, code byte, ok bool) {
	if len(p) < 8 {
		return req, 0, false
	}
	req.TimeoutMS = binary.BigEndian.Uint32(p)
	idLen := binary.BigEndian.Uint32(p[4:])
	rest := uint32(len(p) - 8)
	switch {
	case req.TimeoutMS > MaxExpiry:
		return req, AddErrTimeoutRange, true
	case idLen >= rest:
		return req, AddErrCorrupt, true
	case idLen == 0 || idLen > MaxIDLen:
		return req, AddErrIDRange, true
	}
	req.ID = p[8 : 8+idLen]
	req.Data = p[8+idLen:]
	if len(req.Data) == 0 || len(req.Data) > MaxDataLen {
		return req, AddErrDataRange, true
	}
	return req, ResultOK, true
}
