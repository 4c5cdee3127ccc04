// SPDX-License-Identifier: Apache-2.0

package tool

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/distcache-go/distcache/goimpl/systemd"
)

// activated returns the listening socket systemd's socket activation
// passed for addr, or nil when the process was not socket activated.
// -listen FD:n picks descriptor n (one of those passed); any other address
// takes the first passed socket, the one the .socket unit lists first.
func activated(addr Addr) (*os.File, error) {
	files, err := systemd.Listeners()
	if err != nil || len(files) == 0 {
		return nil, err
	}
	i := 0
	if addr.Network == "fd" {
		i = addr.FD - systemd.ListenFDsStart
		if i < 0 || i >= len(files) {
			return nil, fmt.Errorf("FD:%d is not one of the %d sockets systemd passed (descriptors %d to %d)",
				addr.FD, len(files), systemd.ListenFDsStart, systemd.ListenFDsStart+len(files)-1)
		}
	}
	return files[i], nil
}

// activatedListener wraps a socket systemd passed. systemd owns it: its
// file, owner and permissions are the .socket unit's, and it is never
// removed at exit (the socket unit keeps listening across restarts).
func activatedListener(f *os.File, addr Addr) (*Listener, error) {
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("the socket systemd passed is not a listening stream socket: %v", err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	return &Listener{Listener: ln, Where: addr}, nil
}

// notifyReady tells systemd (Type=notify) that the daemon is ready.
func notifyReady() {
	if _, err := systemd.Notify("READY=1"); err != nil {
		fmt.Fprintf(os.Stderr, "Warning, cannot tell systemd that the service is ready: %v\n", err)
	}
}

var errActivatedDaemon = errors.New("-daemon cannot be used under systemd socket activation (systemd supervises the process)")
