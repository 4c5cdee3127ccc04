// SPDX-License-Identifier: Apache-2.0

package tool

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// A Go process cannot fork safely, so -daemon re-executes the program with
// the same (path-absolutised) arguments and this variable set to the
// descriptor number of a readiness pipe. Inherited descriptors (listeners)
// are 3, 4, ... and the pipe follows them.
const envChild = "DISTCACHE_DAEMON_READY_FD"

var readyPipe *os.File

func init() {
	if v := os.Getenv(envChild); v != "" {
		os.Unsetenv(envChild)
		if fd, err := strconv.Atoi(v); err == nil && fd > 2 {
			readyPipe = os.NewFile(uintptr(fd), "ready")
		}
	}
}

// IsDaemonChild reports whether this process is the re-executed daemon.
func IsDaemonChild() bool { return readyPipe != nil }

// Inherited returns the i-th descriptor handed over by Detach.
func Inherited(i int) *os.File {
	return os.NewFile(uintptr(3+i), "inherited"+strconv.Itoa(i))
}

// Detach starts the daemon: this program again with args, in a new session,
// working directory "/", standard streams on /dev/null, files as
// descriptors 3.... It waits until the child calls Ready and then exits 0,
// or prints the child's error and exits 1. It never returns.
func Detach(args []string, files []*os.File) {
	exe, err := os.Executable()
	if err != nil {
		Die("Error, cannot daemonise: %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		Die("Error, cannot daemonise: %v", err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Dir = "/"
	cmd.ExtraFiles = append(append([]*os.File(nil), files...), w)
	cmd.Env = append(os.Environ(), envChild+"="+strconv.Itoa(3+len(files)))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		Die("Error, cannot daemonise: %v", err)
	}
	w.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimRight(line, "\n")
	if line == "OK" {
		cmd.Process.Release()
		os.Exit(0)
	}
	cmd.Wait()
	if line == "" {
		line = "Error, the daemon process exited during startup"
	}
	fmt.Fprintln(os.Stderr, line)
	os.Exit(1)
}

// Ready tells a waiting parent that startup succeeded; under systemd
// (Type=notify) it sends READY=1, except
// in a successor started by Upgrade: systemd accepts only the main
// process's messages, and the predecessor, the main process until then,
// names this one (MAINPID) once it is ready. It leaves the standard
// streams alone: a -daemon child has had them on /dev/null since Detach
// started it (its startup errors reach the parent through the readiness
// pipe, see Die; the parent printed the warnings of the checks both make
// before Start), and a process in the foreground keeps its standard error
// (under systemd, the journal).
func Ready() {
	if !IsSuccessor() {
		notifyReady()
	}
	if readyPipe == nil {
		return
	}
	fmt.Fprintln(readyPipe, "OK")
	readyPipe.Close()
	readyPipe = nil
}
