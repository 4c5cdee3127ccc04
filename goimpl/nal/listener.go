// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"
)

// Listener accepts connections on a socket, or hands out one FD:
// connection (NAL_LISTENER).
//
// Not safe for concurrent use.
type Listener struct {
	kind     addrKind // kindNone while unused
	fd       int      // socket listeners
	path     string   // unix listeners: the bound path
	rfd, wfd int      // FD: listeners
	defSize  uint32
	addr     string

	caught   bool // a pending connection was recorded by the last select
	accepted bool // FD: listener handed out its connection

	sel    *Selector
	selIdx int
	freed  bool
}

// NewListener returns an unused listener (NAL_LISTENER_new).
func NewListener() *Listener { return &Listener{fd: -1, rfd: -1, wfd: -1} }

func (l *Listener) usable() bool { return l != nil && !l.freed }

// Live reports whether Create succeeded and Reset was not called since.
func (l *Listener) Live() bool { return l.usable() && l.kind != kindNone }

// Free unbinds and closes the listener (NAL_LISTENER_free). A unix socket
// file is left on disk. Safe on nil and twice.
func (l *Listener) Free() {
	if !l.usable() {
		return
	}
	l.Reset()
	l.freed = true
}

// Reset unbinds and closes the listener; it becomes unused
// (NAL_LISTENER_reset). The descriptors of an FD: listener are not closed
// (they belong to the process, or to the connection accepted from it).
func (l *Listener) Reset() {
	if !l.usable() {
		return
	}
	l.DelFromSelector()
	if l.kind != kindFD {
		closeFD(l.fd)
	}
	*l = Listener{fd: -1, rfd: -1, wfd: -1}
}

// Create starts listening on addr (NAL_LISTENER_create): for IP
// addresses socket, SO_REUSEADDR, bind, listen(ListenerBacklog); for
// UNIX addresses an existing socket at the path is unlinked first, but
// any other kind of file there makes Create fail (EDGES E-29); for FD:
// addresses the descriptors are recorded. Fails if the listener is live,
// addr is nil or un-created, or a system call fails. Accepted
// connections get addr.DefBufferSize() buffers.
func (l *Listener) Create(addr *Address) bool {
	if !l.usable() || l.kind != kindNone || !addr.CanListen() {
		return false
	}
	l.defSize = addr.defSize
	if addr.kind == kindFD {
		l.kind, l.rfd, l.wfd = kindFD, addr.fdRead, addr.fdWrite
		l.addr = addr.str
		return true
	}
	sa, family, err := addr.sockaddr()
	if err != nil {
		return false
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	fail := func() bool { closeFD(fd); l.defSize = 0; return false }
	switch addr.kind {
	case kindIPv4, kindIPv6:
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) != nil {
			return fail()
		}
		if addr.kind == kindIPv6 && unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1) != nil {
			return fail()
		}
	case kindUnix:
		var st unix.Stat_t
		name := unixName(addr.path)
		if err := unix.Lstat(name, &st); err == nil {
			if st.Mode&unix.S_IFMT != unix.S_IFSOCK || unix.Unlink(name) != nil {
				return fail()
			}
		}
	}
	if unix.Bind(fd, sa) != nil || unix.Listen(fd, ListenerBacklog) != nil {
		return fail()
	}
	l.kind, l.fd, l.addr = addr.kind, fd, addr.str
	if addr.kind == kindUnix {
		l.path = unixName(addr.path)
	}
	return true
}

// AddToSelector binds l to sel (NAL_LISTENER_add_to_selector). Fails if l
// is unused, already bound, or sel is not usable.
func (l *Listener) AddToSelector(sel *Selector) bool {
	if !l.Live() || l.sel != nil || !sel.usable() {
		return false
	}
	sel.addList(l)
	return true
}

// DelFromSelector unbinds l (no-op if unbound) and forgets a pending
// connection recorded by a select (NAL_LISTENER_del_from_selector).
func (l *Listener) DelFromSelector() {
	if l == nil || l.sel == nil {
		return
	}
	l.sel.delList(l)
	l.caught = false
}

// Finished reports whether the listener will accept nothing more
// (NAL_LISTENER_finished): always false for socket listeners; for an FD:
// listener true once its one connection has been accepted. (The original
// turned true as soon as input arrived, before the accept, which made
// servers that test Finished first exit without serving; EDGES E-27.)
func (l *Listener) Finished() bool { return l.Live() && l.kind == kindFD && l.accepted }

// SetFSOwner changes the owner and group of a unix listener's socket file
// (NAL_LISTENER_set_fs_owner). A nil pointer or an empty string means
// "unchanged" for that part; an owner without a group also sets the
// owner's primary group. Fails for non-unix listeners and unknown names.
func (l *Listener) SetFSOwner(owner, group *string) bool {
	if !l.Live() || l.kind != kindUnix {
		return false
	}
	uid, gid := -1, -1
	if owner != nil && *owner != "" {
		u, err := user.Lookup(*owner)
		if err != nil {
			return false
		}
		if uid, err = strconv.Atoi(u.Uid); err != nil {
			return false
		}
		if gid, err = strconv.Atoi(u.Gid); err != nil {
			return false
		}
	}
	if group != nil && *group != "" {
		g, err := user.LookupGroup(*group)
		if err != nil {
			return false
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return false
		}
	}
	return unix.Chown(l.path, uid, gid) == nil
}

// SetFSPerms changes the permission bits of a unix listener's socket file
// (NAL_LISTENER_set_fs_perms). octal is parsed like strtol(octal, &end, 8)
// and must be consumed entirely; empty, negative or > 07777 values fail.
func (l *Listener) SetFSPerms(octal string) bool {
	if !l.Live() || l.kind != kindUnix {
		return false
	}
	i := 0
	for i < len(octal) && isCSpace(octal[i]) {
		i++
	}
	if i < len(octal) && octal[i] == '+' {
		i++
	}
	if i == len(octal) {
		return false
	}
	v, err := strconv.ParseUint(octal[i:], 8, 32)
	if err != nil || v > 0o7777 {
		return false
	}
	return unix.Chmod(l.path, uint32(v)) == nil
}

// Selector returns the selector l is bound to, or nil.
func (l *Listener) Selector() *Selector {
	if l == nil {
		return nil
	}
	return l.sel
}
