// SPDX-License-Identifier: Apache-2.0

package nal

import "net/netip"

// Snapshots: plain values describing each object's state, so that a fresh
// engine (for example in a child process after fork) can rebuild objects
// around the same descriptors. Descriptors are not duplicated: the
// imported object takes them over. Selector membership is not part of an
// object's state: re-bind with AddToSelector after importing (readiness
// recorded by an earlier select is not carried over).

// AddressState is an Address's state. Hosts are stored resolved, so
// importing never resolves again.
type AddressState struct {
	Created               bool
	DefSize               uint32
	Str                   string
	Kind                  uint8
	IP                    string // netip text form ("" if none)
	Port                  uint16
	Path                  string
	FDRead, FDWrite       int
	CanConnect, CanListen bool
}

// Export returns a's state (zero value for nil or freed).
func (a *Address) Export() AddressState {
	if a == nil || a.freed {
		return AddressState{}
	}
	st := AddressState{Created: a.kind != kindNone, DefSize: a.defSize, Str: a.str, Kind: uint8(a.kind),
		Port: a.port, Path: a.path, FDRead: a.fdRead, FDWrite: a.fdWrite,
		CanConnect: a.canConnect, CanListen: a.canListen}
	if a.ip.IsValid() {
		st.IP = a.ip.String()
	}
	return st
}

// ImportAddress rebuilds an address from st; nil if st is inconsistent.
func ImportAddress(st AddressState) *Address {
	a := &Address{defSize: st.DefSize}
	if st.DefSize > BufferMaxSize {
		return nil
	}
	if !st.Created {
		return a
	}
	k := addrKind(st.Kind)
	if k <= kindNone || k > kindFD {
		return nil
	}
	a.kind, a.str, a.port, a.path, a.fdRead, a.fdWrite = k, st.Str, st.Port, st.Path, st.FDRead, st.FDWrite
	a.canConnect, a.canListen = st.CanConnect, st.CanListen
	if st.IP != "" {
		ip, err := netip.ParseAddr(st.IP)
		if err != nil {
			return nil
		}
		a.ip = ip
	}
	return a
}

// BufferState is a Buffer's size and contents.
type BufferState struct {
	Size uint32
	Data []byte // a copy
}

// Export returns b's size and a copy of its contents.
func (b *Buffer) Export() BufferState {
	if b == nil {
		return BufferState{}
	}
	return BufferState{Size: b.Size(), Data: append([]byte(nil), b.Data()...)}
}

// Import replaces b's size and contents with st's (false if st does not
// fit or allocation fails).
func (b *Buffer) Import(st BufferState) bool {
	if b == nil || st.Size > BufferMaxSize || len(st.Data) > int(st.Size) {
		return false
	}
	if !b.SetSize(st.Size) {
		return false
	}
	b.Reset()
	b.Write(st.Data)
	return true
}

// FDFileState is one descriptor of an FD: connection.
type FDFileState struct {
	Orig, FD int
	Sock     bool
	OldFlags int
}

// ConnectionState is a Connection's state.
type ConnectionState struct {
	Live        bool
	Kind        uint8
	FD          int
	TCP         bool
	Established bool
	Addr        string
	R, W        FDFileState // FD: connections
	Read, Send  BufferState
}

// Export returns c's state (not its selector binding).
func (c *Connection) Export() ConnectionState {
	if !c.usable() {
		return ConnectionState{}
	}
	ff := func(f fdFile) FDFileState { return FDFileState{f.orig, f.fd, f.sock, f.oldFlags} }
	return ConnectionState{Live: c.kind != connNone, Kind: uint8(c.kind), FD: c.fd, TCP: c.tcp,
		Established: c.established, Addr: c.addr, R: ff(c.rf), W: ff(c.wf),
		Read: c.read.Export(), Send: c.send.Export()}
}

// ImportConnection rebuilds a connection (unbound) from st, taking over
// its descriptors; nil if st is inconsistent.
func ImportConnection(st ConnectionState) *Connection {
	c := NewConnection()
	if !c.read.Import(st.Read) || !c.send.Import(st.Send) {
		c.Free()
		return nil
	}
	if !st.Live {
		c.read.Reset()
		c.send.Reset()
		return c
	}
	ff := func(f FDFileState) fdFile { return fdFile{orig: f.Orig, fd: f.FD, sock: f.Sock, oldFlags: f.OldFlags} }
	switch connKind(st.Kind) {
	case connSock:
		if st.FD < 0 {
			c.Free()
			return nil
		}
		c.fd = st.FD
	case connFD:
		c.rf, c.wf = ff(st.R), ff(st.W)
	default:
		c.Free()
		return nil
	}
	c.kind, c.tcp, c.established, c.addr = connKind(st.Kind), st.TCP, st.Established, st.Addr
	return c
}

// ListenerState is a Listener's state.
type ListenerState struct {
	Live     bool
	Kind     uint8
	FD       int
	Path     string
	RFD, WFD int
	DefSize  uint32
	Addr     string
	Accepted bool
}

// Export returns l's state (not its selector binding).
func (l *Listener) Export() ListenerState {
	if !l.usable() {
		return ListenerState{}
	}
	return ListenerState{Live: l.kind != kindNone, Kind: uint8(l.kind), FD: l.fd, Path: l.path,
		RFD: l.rfd, WFD: l.wfd, DefSize: l.defSize, Addr: l.addr, Accepted: l.accepted}
}

// ImportListener rebuilds a listener (unbound) from st, taking over its
// descriptor; nil if st is inconsistent.
func ImportListener(st ListenerState) *Listener {
	l := NewListener()
	if !st.Live {
		return l
	}
	k := addrKind(st.Kind)
	if k <= kindNone || k > kindFD || st.DefSize > BufferMaxSize || (k != kindFD && st.FD < 0) {
		return nil
	}
	l.kind, l.fd, l.path, l.rfd, l.wfd, l.defSize, l.addr, l.accepted = k, st.FD, st.Path, st.RFD, st.WFD, st.DefSize, st.Addr, st.Accepted
	return l
}

// SelectorState is a Selector's type; membership is restored by binding
// the imported objects again.
type SelectorState struct {
	Type SelectorType
}

// Export returns s's state.
func (s *Selector) Export() SelectorState { return SelectorState{Type: s.Type()} }

// ImportSelector rebuilds an empty selector of st's type (nil for an
// invalid type).
func ImportSelector(st SelectorState) *Selector {
	if st.Type < SelectorDynamic || st.Type > SelectorFdPoll {
		return nil
	}
	return &Selector{typ: st.Type}
}
