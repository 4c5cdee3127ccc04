// SPDX-License-Identifier: Apache-2.0

package tool

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Socket squatting: a unix socket path in a directory others can write to
// (/tmp) can be bound first by another user, and the applications that
// connect there hand that user their sessions. The tools therefore default
// to a directory only the service owns, refuse a path held by another
// user's live server with how to fix it, report the owner of whatever is
// in the way, and warn about a socket placed where others could take it.

// DefaultSocketDir is the directory of a daemon's default unix socket:
// /run/distcache for root; for another user $XDG_RUNTIME_DIR/distcache
// when that runtime directory is the user's own, else /tmp/distcache-<uid>.
func DefaultSocketDir() string {
	return defaultSocketDir(os.Geteuid(), os.Getenv("XDG_RUNTIME_DIR"))
}

func defaultSocketDir(uid int, runtimeDir string) string {
	if uid == 0 {
		return "/run/distcache"
	}
	if filepath.IsAbs(runtimeDir) {
		if fi, err := os.Stat(runtimeDir); err == nil && fi.IsDir() && ownerOf(fi) == uid && fi.Mode().Perm()&0o022 == 0 {
			return filepath.Join(runtimeDir, "distcache")
		}
	}
	return "/tmp/distcache-" + strconv.Itoa(uid)
}

// PrepareSocketDir creates dir (mode 0755 for root, so that other users'
// applications may connect to sockets made accessible to them, 0700
// otherwise), or checks that the existing one belongs to this user (or
// root) and that no one else can write to it.
func PrepareSocketDir(dir string) error {
	uid := os.Geteuid()
	mode := os.FileMode(0o700)
	if uid == 0 {
		mode = 0o755
	}
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("cannot create the socket directory %s: %v", dir, unwrapPath(err))
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	switch owner := ownerOf(fi); {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory (%s); remove it or choose a -listen path", dir, describe(fi))
	case owner != uid && owner != 0:
		return fmt.Errorf("the socket directory %s belongs to %s, not to this user: another user may be squatting it; remove it (as root: rm -r %s) or choose a -listen path", dir, userName(owner), dir)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("the socket directory %s can be written by others (mode %04o): chmod go-w %s, or choose a -listen path", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// clearUnixPath makes path free to bind: nothing there, or a stale socket
// that is removed. A live socket, or anything that is not a socket, is an
// error that says whose it is.
func clearUnixPath(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket (%s); remove it or choose another path", path, describe(fi))
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		pid, uid := peerCred(c)
		c.Close()
		if uid < 0 {
			uid = ownerOf(fi)
		}
		who := fmt.Sprintf("pid %d, %s", pid, userName(uid))
		if uid != os.Geteuid() {
			return fmt.Errorf("%s: another server is already listening there, of another user (%s; the socket is %s): "+
				"applications connecting to this path would hand it their sessions. Stop it, or remove the socket (as root: rm %s), "+
				"and put the socket in a directory only this service can write, such as %s", path, who, describe(fi), path, DefaultSocketDir())
		}
		return fmt.Errorf("%s: another server is already listening there (%s)", path, who)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("cannot remove stale socket %s (%s): %v", path, describe(fi), unwrapPath(err))
	}
	return nil
}

// warnSharedDir warns when the directory of a unix socket can be written
// by other users (as /tmp): one of them could take the path first.
func warnSharedDir(path string) {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm()&0o002 == 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "Warning, the socket %s is in %s, which every user can write to: another user could bind the path "+
		"first and receive the sessions; prefer a directory only this service owns, such as %s\n", path, dir, DefaultSocketDir())
}

func ownerOf(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("user '%s' (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// describe says what a file is and whose.
func describe(fi os.FileInfo) string {
	kind := "a file"
	switch m := fi.Mode(); {
	case m.IsRegular():
		kind = "a regular file"
	case m.IsDir():
		kind = "a directory"
	case m&os.ModeSymlink != 0:
		kind = "a symbolic link"
	case m&os.ModeSocket != 0:
		kind = "a socket"
	case m&os.ModeNamedPipe != 0:
		kind = "a named pipe"
	}
	return kind + " owned by " + userName(ownerOf(fi))
}

// peerCred returns the pid and uid of the process at the other end of a
// unix connection (-1 when unknown).
func peerCred(c net.Conn) (pid, uid int) {
	pid, uid = -1, -1
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid, uid = int(cred.Pid), int(cred.Uid)
		}
	})
	return
}
