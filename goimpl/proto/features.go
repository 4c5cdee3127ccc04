// SPDX-License-Identifier: Apache-2.0

package proto

import "encoding/binary"

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
