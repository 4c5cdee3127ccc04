// SPDX-License-Identifier: Apache-2.0

package tool

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// earlyUpgradeHelper is a daemon that gets UpgradeSignal once it has
// reported itself ready (Daemon.Start) but before it calls OnSignal, as
// a signal sent as soon as the pid file names a process does: OnSignal
// must then try the re-exec. It says which on stdout and exits.
func earlyUpgradeHelper() {
	var d Daemon
	d.Start(nil, nil)
	syscall.Kill(os.Getpid(), UpgradeSignal)
	time.Sleep(100 * time.Millisecond) // the signal is delivered meanwhile
	tried := make(chan struct{})
	Upgrader{Files: func() ([]*os.File, error) {
		close(tried)
		return nil, errors.New("test: no re-exec")
	}}.OnSignal()
	select {
	case <-tried:
		os.Stdout.WriteString("re-exec tried\n")
		os.Exit(0)
	case <-time.After(20 * time.Second):
		os.Stdout.WriteString("the signal was lost\n")
		os.Exit(1)
	}
}

// An UpgradeSignal that comes after the daemon is ready and before it
// listens for it (OnSignal) is acted on, not lost nor left to its default
// action (the process stopped): dc_server's TestUpgradeDaemonUserNotify
// sent it then and waited in vain (pinned to one CPU under load, 2 runs
// in 6).
func TestUpgradeSignalBeforeOnSignal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "NOTIFY_SOCKET=") {
			env = append(env, e)
		}
	}
	cmd.Env = append(env, "DC_TEST_EARLY_UPGRADE=1")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stat := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat"
	for {
		select {
		case err := <-done:
			if err != nil || !strings.Contains(out.String(), "re-exec tried") {
				t.Fatalf("helper: %v\n%s", err, out.String())
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		b, _ := os.ReadFile(stat)
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'T' {
			cmd.Process.Kill()
			<-done
			t.Fatalf("the signal before OnSignal stopped the daemon\n%s", out.String())
		}
	}
}
