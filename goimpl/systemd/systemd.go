// SPDX-License-Identifier: Apache-2.0

// Package systemd speaks the two small protocols a daemon needs to run well
// under systemd, in pure Go (no libsystemd, no cgo):
//
//   - readiness and status notification (sd_notify): Notify sends a state
//     string such as "READY=1" as one datagram to the unix socket named by
//     $NOTIFY_SOCKET (a path, or an abstract name starting with '@');
//   - socket activation (sd_listen_fds): Listeners returns the descriptors
//     systemd passed from descriptor 3 on, when $LISTEN_PID is this process
//     and $LISTEN_FDS counts them.
//
// Both do nothing when the variables are absent, so a daemon can call them
// unconditionally. dc_server and dc_client call them through
// cmd/internal/tool: readiness once the listener is open and the process
// has switched user, the activation sockets in place of binding -listen.
package systemd

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
)

// ListenFDsStart is the first descriptor systemd passes (SD_LISTEN_FDS_START).
const ListenFDsStart = 3

// Notify sends state (newline-separated VAR=value assignments, e.g.
// "READY=1" or "STOPPING=1") to the service manager. It reports whether a
// manager was there to tell: false with a nil error when $NOTIFY_SOCKET is
// not set.
func Notify(state string) (bool, error) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return false, nil
	}
	if name[0] != '/' && name[0] != '@' {
		return false, errors.New("NOTIFY_SOCKET is neither a path nor an abstract socket name: " + name)
	}
	// The net package maps a leading '@' to Linux's abstract namespace.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}

// Listeners returns the sockets passed by socket activation, as files for
// descriptors 3, 4, ..., or nil when this process was not socket activated
// ($LISTEN_PID absent or another process's). The variables are removed
// from the environment either way, so that child processes do not take the
// sockets for theirs. Each descriptor is marked close-on-exec.
func Listeners() ([]*os.File, error) {
	pidStr, fdsStr := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS")
	names := os.Getenv("LISTEN_FDNAMES")
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	if pidStr == "" {
		return nil, nil
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil {
		return nil, errors.New("LISTEN_PID is not a number: " + pidStr)
	}
	if pid != os.Getpid() {
		return nil, nil
	}
	n, err := strconv.Atoi(fdsStr)
	if err != nil || n < 0 || n > 1<<16 {
		return nil, errors.New("LISTEN_FDS is not a descriptor count: " + fdsStr)
	}
	nameList := strings.Split(names, ":")
	files := make([]*os.File, 0, n)
	for i := range n {
		fd := ListenFDsStart + i
		name := "LISTEN_FD_" + strconv.Itoa(fd)
		if i < len(nameList) && nameList[i] != "" {
			name = nameList[i]
		}
		setCloseOnExec(fd)
		files = append(files, os.NewFile(uintptr(fd), name))
	}
	return files, nil
}
