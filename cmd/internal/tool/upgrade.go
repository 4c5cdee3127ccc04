// SPDX-License-Identifier: Apache-2.0

package tool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/distcache-go/distcache/goimpl/handover"
	"github.com/distcache-go/distcache/goimpl/systemd"
)

// UpgradeSignal asks a daemon to re-execute itself (a new binary at the
// same path, the same options) and hand over its listening sockets and
// its cache. SIGHUP reloads keys and certificates, SIGUSR1/SIGUSR2 stop a
// -killable daemon and SIGWINCH dumps the counters; distcache 1.5 used
// none of them for anything else, and SIGTTIN is sent by the kernel only to
// a background process reading its terminal, which a daemon never does.
const UpgradeSignal = syscall.SIGTTIN

// A successor reads its predecessor's state from the descriptor named by
// envState and receives its connections on the one named by envConns; its
// listeners are 3, 4, ... as for -daemon.
const (
	envState   = "DISTCACHE_UPGRADE_STATE_FD"
	envConns   = "DISTCACHE_UPGRADE_CONNS_FD"
	envPIDFile = "DISTCACHE_UPGRADE_PIDFILE_FD"
)

var statePipe, connSocket *os.File

// pidFile is the open -pidfile (Daemon.Start): a successor inherits it and
// writes its pid through it, whatever user it runs as.
var pidFile *os.File

// successor is set when this process was started by Upgrade.
var successor bool

func init() {
	statePipe = inheritedFrom(envState, "handover")
	connSocket = inheritedFrom(envConns, "handover-conns")
	pidFile = inheritedFrom(envPIDFile, "pidfile")
	successor = statePipe != nil
}

// IsSuccessor reports whether this process was started by Upgrade to
// replace another: it inherits that one's sockets.
func IsSuccessor() bool { return successor }

func inheritedFrom(env, name string) *os.File {
	v := os.Getenv(env)
	if v == "" {
		return nil
	}
	os.Unsetenv(env)
	if fd, err := strconv.Atoi(v); err == nil && fd > 2 {
		return os.NewFile(uintptr(fd), name)
	}
	return nil
}

// HandedConns returns the receiving end of the connections the process
// this one replaces hands over (Handed.Conns there), or nil when this
// process was not started by Upgrade.
func HandedConns() *handover.Receiver {
	f := connSocket
	connSocket = nil
	if f == nil {
		return nil
	}
	r, err := handover.NewReceiver(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Warning, cannot receive the connections of the previous process: %v\n", err)
		return nil
	}
	return r
}

// Handed is what a daemon keeps once its successor is ready: the writer of
// the final state stream, which it writes and closes after its last
// answer, and the sender of its connections, which it closes once every
// connection is passed.
type Handed struct {
	Final io.WriteCloser
	Conns *handover.Sender
}

// HandedOver returns the state written by the process this one replaces,
// or nil when this process was not started by Upgrade: the first stream
// (written before this process is ready) and, once it is ready and its
// predecessor has answered its last request, a final stream with what
// changed in between; then end of file.
func HandedOver() *os.File {
	f := statePipe
	statePipe = nil
	return f
}

// Upgrade starts this program again (the binary now at its path) with
// args as this process's successor: files become its descriptors 3, ...,
// in the order Listen and -daemon use, and writeState writes what it reads
// from HandedOver. It returns the successor's pid once that calls Ready,
// having told systemd (Type=notify) that the successor is the main process,
// and what the caller hands over from then on (Handed). If the successor
// fails, exits or is not ready within timeout, it is killed and the error
// carries what it said; this process goes on as if nothing had happened.
func Upgrade(args []string, files []*os.File, writeState func(io.Writer) error, timeout time.Duration) (int, *Handed, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, nil, err
	}
	conns, connsR, err := handover.Pair()
	if err != nil {
		return 0, nil, err
	}
	defer connsR.Close()
	ok := false
	defer func() {
		if !ok {
			conns.Close()
		}
	}()
	exe = strings.TrimSuffix(exe, " (deleted)") // replaced under us: start the new file
	ready, readyW, err := os.Pipe()
	if err != nil {
		return 0, nil, err
	}
	defer ready.Close()
	stateR, stateW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return 0, nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = append(append([]*os.File(nil), files...), readyW, stateR, connsR)
	n := 3 + len(files)
	cmd.Env = append(os.Environ(), envChild+"="+strconv.Itoa(n), envState+"="+strconv.Itoa(n+1), envConns+"="+strconv.Itoa(n+2))
	if pidFile != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, pidFile)
		cmd.Env = append(cmd.Env, envPIDFile+"="+strconv.Itoa(n+3))
	}
	err = cmd.Start()
	readyW.Close()
	stateR.Close()
	if err != nil {
		stateW.Close()
		return 0, nil, err
	}
	wrote := make(chan error, 1)
	go func() {
		wrote <- writeState(stateW)
	}()
	ready.SetReadDeadline(time.Now().Add(timeout))
	line, rerr := bufio.NewReader(ready).ReadString('\n')
	line = strings.TrimRight(line, "\n")
	if line == "OK" {
		if err := <-wrote; err != nil {
			// It is serving, with what it received: keep it.
			fmt.Fprintf(os.Stderr, "Warning, the new process started without all of the state: %v\n", err)
		}
		pid := cmd.Process.Pid
		cmd.Process.Release()
		if _, err := systemd.Notify("MAINPID=" + strconv.Itoa(pid) + "\nREADY=1"); err != nil {
			fmt.Fprintf(os.Stderr, "Warning, cannot tell systemd the new main process: %v\n", err)
		}
		ok = true
		return pid, &Handed{Final: stateW, Conns: conns}, nil
	}
	stateW.Close()
	cmd.Process.Kill()
	cmd.Wait()
	<-wrote
	switch {
	case line != "":
		return 0, nil, errors.New(line)
	case errors.Is(rerr, os.ErrDeadlineExceeded):
		return 0, nil, fmt.Errorf("the new process was not ready within %v", timeout)
	}
	return 0, nil, errors.New("the new process exited during startup")
}

// upgradeSig receives UpgradeSignal from the moment the daemon reports
// itself ready (Daemon.Start) on: a signal that comes before OnSignal
// runs waits there, instead of being lost to the signal's default action
// (stop, or nothing in an orphaned process group), as one sent right
// after the pid file names the process, or right after the predecessor
// of a re-exec has gone, was.
var (
	upgradeSigOnce sync.Once
	upgradeSig     chan os.Signal
)

// holdUpgradeSignal starts (once) delivering UpgradeSignal to upgradeSig
// and returns it.
func holdUpgradeSignal() chan os.Signal {
	upgradeSigOnce.Do(func() {
		upgradeSig = make(chan os.Signal, 1)
		signal.Notify(upgradeSig, UpgradeSignal)
	})
	return upgradeSig
}

// Upgrader is what a daemon hands over on UpgradeSignal.
type Upgrader struct {
	Args []string // the daemon's (rewritten) arguments
	// Files returns fresh duplicates of the descriptors the successor
	// inherits, in the order Listen expects; they are closed after the
	// start.
	Files func() ([]*os.File, error)
	// State writes the first state stream (nil: none).
	State func(io.Writer) error
	// Abort, when set, runs after a failed attempt (State's writing has
	// ended).
	Abort func()
	// Timeout is how long the successor may take to be ready (nil: 30
	// seconds), asked at each attempt: it may grow with the state.
	Timeout func() time.Duration
}

// OnSignal re-executes the daemon each time UpgradeSignal arrives, until
// one successor is ready: then it sends what is to be handed over on the
// returned channel (the daemon stops, passing its connections, writes the
// final state and closes both) and stops listening for the signal. A
// failed attempt is logged and leaves this process serving.
func (u Upgrader) OnSignal() <-chan *Handed {
	handed := make(chan *Handed, 1)
	sig := holdUpgradeSignal()
	state := u.State
	if state == nil {
		state = func(io.Writer) error { return nil }
	}
	go func() {
		defer signal.Stop(sig)
		for range sig {
			files, err := u.Files()
			if err != nil {
				fmt.Fprintf(os.Stderr, "Error, re-exec failed, still serving: %v\n", err)
				continue
			}
			timeout := 30 * time.Second
			if u.Timeout != nil {
				timeout = u.Timeout()
			}
			pid, h, err := Upgrade(u.Args, files, state, timeout)
			for _, f := range files {
				f.Close()
			}
			if err != nil {
				if u.Abort != nil {
					u.Abort()
				}
				fmt.Fprintf(os.Stderr, "Error, re-exec failed, still serving: %v\n", err)
				continue
			}
			fmt.Fprintf(os.Stderr, "Info, process %d has taken over; handing it the connections, then exiting\n", pid)
			handed <- h
			return
		}
	}()
	return handed
}

// TakeConns receives the connections the process this one replaces hands
// over (r from HandedConns) and passes each to adopt: those that arrive
// before start is closed wait for it (a nil start: none wait), so that a
// successor serves nothing before it has its predecessor's last state. It
// returns at once; the receiving ends when the predecessor has passed all.
func TakeConns(r *handover.Receiver, start <-chan struct{}, adopt func(nc net.Conn, out, in []byte)) {
	type held struct {
		nc      net.Conn
		out, in []byte
	}
	var mu sync.Mutex
	var waiting []held
	started := start == nil
	if !started {
		go func() {
			<-start
			mu.Lock()
			defer mu.Unlock()
			for _, h := range waiting {
				adopt(h.nc, h.out, h.in)
			}
			waiting, started = nil, true
		}()
	}
	go func() {
		defer r.Close()
		for {
			nc, out, in, err := r.Receive()
			if err != nil {
				if err != io.EOF {
					fmt.Fprintf(os.Stderr, "Warning, receiving the connections of the previous process: %v\n", err)
				}
				return
			}
			mu.Lock()
			if started {
				adopt(nc, out, in)
			} else {
				waiting = append(waiting, held{nc, out, in})
			}
			mu.Unlock()
		}
	}()
}
