// SPDX-License-Identifier: Apache-2.0

package proto

import (
	"encoding/binary"
	"time"
)

// Extensions beyond 1.5 are negotiated without changing the 1.5 protocol:
// a client GETs the reserved id FeaturesID. A 1.5 server finds no such
// session and answers 0x01; a server of ours answers FeaturesMagic
// followed by a big-endian uint32 of feature bits. A client sends an
// extension's operation only to a server that announced it, and forgets the
// announcement if the server then closes the connection on it (a 1.5 server
// whose cache happens to hold a session under FeaturesID).

// FeaturesID is the reserved session id of the feature probe. Servers of
// ours refuse to store a session under it.
var FeaturesID = []byte("\x00distcache-go:features")

// FeaturesMagic starts a feature answer.
var FeaturesMagic = [4]byte{'D', 'C', 'X', '1'}

// Feature bits.
const (
	// FeatureTake: the server answers OpTake (GET and REMOVE atomically).
	FeatureTake uint32 = 1 << 0
	// FeatureNotify: the server answers OpSubscribe and then sends the
	// connection an OpNotice for every session removed or taken, before
	// it answers the request that removed it.
	FeatureNotify uint32 = 1 << 1
	// FeatureGetLife: the server answers OpGetLife.
	FeatureGetLife uint32 = 1 << 2
)

// AppendFeatures appends the feature answer announcing bits.
func AppendFeatures(dst []byte, bits uint32) []byte {
	dst = append(dst, FeaturesMagic[:]...)
	return binary.BigEndian.AppendUint32(dst, bits)
}

// ParseFeatures reads a GET answer to the feature probe: the announced
// bits, or 0 for anything else (a 1.5 server's miss).
func ParseFeatures(p []byte) uint32 {
	if len(p) != 8 || [4]byte(p[:4]) != FeaturesMagic {
		return 0
	}
	return binary.BigEndian.Uint32(p[4:])
}

// IsFeaturesID reports whether id is the reserved probe id.
func IsFeaturesID(id []byte) bool { return string(id) == string(FeaturesID) }

// NearMapID is the reserved session id a local client GETs on dc_client's
// unix socket to be handed dc_client's near map (goimpl/nearmap): a
// dc_client that shares one answers nearmap.ProbeAnswer with the map's
// descriptor; every other server of ours answers a miss without asking a
// store, and refuses to store a session under it.
var NearMapID = []byte("\x00distcache-go:nearmap")

// IsNearMapID reports whether id is NearMapID.
func IsNearMapID(id []byte) bool { return string(id) == string(NearMapID) }

// IsReservedID reports whether id is one of the reserved ids, which no
// server of ours stores.
func IsReservedID(id []byte) bool { return IsFeaturesID(id) || IsNearMapID(id) }

// LifeSize is the size of the remaining lifetime that starts an
// OpGetLife answer to a hit.
const LifeSize = 4

// MaxLifeData is the largest session an OpGetLife answer can carry.
const MaxLifeData = MaxPayload - LifeSize

// PutLife writes the remaining lifetime left, in whole milliseconds
// rounded down (0 when none is left, at most MaxExpiry), into the first
// LifeSize bytes of an OpGetLife answer, which the session's data follows.
func PutLife(b []byte, left time.Duration) {
	ms := max(0, min(left/time.Millisecond, MaxExpiry))
	binary.BigEndian.PutUint32(b, uint32(ms))
}

// ParseLife splits an OpGetLife answer to a hit (more than LifeSize
// bytes) into the remaining lifetime and the data; ok is false for any
// other answer (a one-byte result: 0x01 a miss, ResultTooLarge).
func ParseLife(p []byte) (left time.Duration, data []byte, ok bool) {
	if len(p) <= LifeSize {
		return 0, nil, false
	}
	ms := min(binary.BigEndian.Uint32(p), MaxExpiry)
	return time.Duration(ms) * time.Millisecond, p[LifeSize:], true
}
