// SPDX-License-Identifier: Apache-2.0

package tool

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// Cred is a user to switch to: uid, primary gid and supplementary groups.
type Cred struct {
	Name   string
	UID    int
	GID    int
	Groups []int
}

// LookupUser resolves a user name (or numeric uid) from the system's user
// database, so that an unknown user is reported before anything starts.
func LookupUser(name string) (*Cred, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.Atoi(name); nerr == nil {
			u, err = user.LookupId(name)
		}
		if err != nil {
			return nil, err
		}
	}
	c := &Cred{Name: name}
	if c.UID, err = strconv.Atoi(u.Uid); err != nil {
		return nil, err
	}
	if c.GID, err = strconv.Atoi(u.Gid); err != nil {
		return nil, err
	}
	c.Groups = []int{c.GID}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil && g != c.GID {
				c.Groups = append(c.Groups, g)
			}
		}
	}
	return c, nil
}

// Apply drops privileges: supplementary groups, then gid, then uid (the
// original only called setuid and kept root's groups, EDGES E-44).
func (c *Cred) Apply() error {
	if os.Getuid() == c.UID && os.Geteuid() == c.UID && os.Getgid() == c.GID && c.UID != 0 {
		// Already this user: a successor started by Upgrade after the
		// switch (which, not root any more, could not switch again).
		return nil
	}
	if err := syscall.Setgroups(c.Groups); err != nil {
		return fmt.Errorf("setgroups: %v", err)
	}
	if err := syscall.Setgid(c.GID); err != nil {
		return fmt.Errorf("setgid(%d): %v", c.GID, err)
	}
	if err := syscall.Setuid(c.UID); err != nil {
		return fmt.Errorf("setuid(%d): %v", c.UID, err)
	}
	return nil
}

// SockOwner changes the owner and/or group of a unix socket file; an empty
// name leaves that part unchanged; an owner without a group also sets the
// owner's primary group (as libnal does).
func SockOwner(path, owner, group string) error {
	uid, gid := -1, -1
	if owner != "" {
		u, err := user.Lookup(owner)
		if err != nil {
			return err
		}
		uid, _ = strconv.Atoi(u.Uid)
		if group == "" {
			gid, _ = strconv.Atoi(u.Gid)
		}
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return err
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	return os.Chown(path, uid, gid)
}

// SockPerms chmods a unix socket file to an octal mode string.
func SockPerms(path, octal string) error {
	m, err := strconv.ParseUint(octal, 8, 32)
	if err != nil || octal == "" || strings.HasPrefix(octal, "+") || strings.HasPrefix(octal, "-") || m > 07777 {
		return fmt.Errorf("bad mode %q", octal)
	}
	return os.Chmod(path, os.FileMode(m&0777)|modeBits(m))
}

func modeBits(m uint64) os.FileMode {
	var f os.FileMode
	if m&04000 != 0 {
		f |= os.ModeSetuid
	}
	if m&02000 != 0 {
		f |= os.ModeSetgid
	}
	if m&01000 != 0 {
		f |= os.ModeSticky
	}
	return f
}

// nullOr prints an empty option as the original did for a NULL string.
func nullOr(s string) string {
	if s == "" {
		return "(null)"
	}
	return s
}
