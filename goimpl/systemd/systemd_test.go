// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// notifySocket listens where NOTIFY_SOCKET will point and returns the
// connection to read datagrams from.
func notifySocket(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return c
}

func readDatagram(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification arrived: %v", err)
	}
	return string(buf[:n])
}

func TestNotifyPath(t *testing.T) {
	c := notifySocket(t, filepath.Join(t.TempDir(), "notify"))
	sent, err := Notify("READY=1\nSTATUS=serving")
	if err != nil || !sent {
		t.Fatalf("Notify = %v, %v; want true, nil", sent, err)
	}
	if got := readDatagram(t, c); got != "READY=1\nSTATUS=serving" {
		t.Fatalf("manager received %q", got)
	}
}

func TestNotifyAbstract(t *testing.T) {
	name := "@distcache-test-" + strconv.Itoa(os.Getpid())
	c := notifySocket(t, name)
	if sent, err := Notify("READY=1"); err != nil || !sent {
		t.Fatalf("Notify = %v, %v; want true, nil", sent, err)
	}
	if got := readDatagram(t, c); got != "READY=1" {
		t.Fatalf("manager received %q", got)
	}
}

func TestNotifyWithoutManager(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify("READY=1"); sent || err != nil {
		t.Fatalf("Notify without NOTIFY_SOCKET = %v, %v; want false, nil", sent, err)
	}
}

func TestNotifyBadSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "relative/name")
	if _, err := Notify("READY=1"); err == nil {
		t.Fatal("Notify accepted a relative NOTIFY_SOCKET")
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	if sent, err := Notify("READY=1"); err == nil || sent {
		t.Fatalf("Notify to a missing socket = %v, %v; want an error", sent, err)
	}
}

func TestListenersNotActivated(t *testing.T) {
	t.Setenv("LISTEN_PID", "")
	files, err := Listeners()
	if err != nil || files != nil {
		t.Fatalf("Listeners() = %v, %v without LISTEN_PID", files, err)
	}
	// Another process's sockets are not ours, and the variables go away.
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()+1))
	t.Setenv("LISTEN_FDS", "1")
	files, err = Listeners()
	if err != nil || files != nil {
		t.Fatalf("Listeners() = %v, %v for LISTEN_PID of another process", files, err)
	}
	if v, ok := os.LookupEnv("LISTEN_FDS"); ok {
		t.Fatalf("LISTEN_FDS=%q left in the environment", v)
	}
}

func TestListenersBadCount(t *testing.T) {
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	t.Setenv("LISTEN_FDS", "many")
	if _, err := Listeners(); err == nil {
		t.Fatal("Listeners() accepted LISTEN_FDS=many")
	}
}

// The activated case runs in a child process that is handed a listening
// socket as descriptor 3, the way systemd hands it over. systemd sets
// LISTEN_PID to the child's pid, which the parent cannot know before the
// child exists; the child sets it itself from LISTEN_PID_SELF.
func TestListenersActivated(t *testing.T) {
	if os.Getenv("SYSTEMD_TEST_CHILD") == "1" {
		activatedChild()
		return
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestListenersActivated$", "-test.v")
	cmd.Env = append(os.Environ(), "SYSTEMD_TEST_CHILD=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=dc_server.socket")
	cmd.ExtraFiles = []*os.File{f}
	done := make(chan []byte, 1)
	go func() {
		out, _ := cmd.CombinedOutput()
		done <- out
	}()
	// The child accepts one connection on the passed socket and writes
	// its name to it.
	c, err := net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	c.Close()
	out := <-done
	if got := string(buf[:n]); got != "dc_server.socket" {
		t.Fatalf("child answered %q through the passed socket; its output:\n%s", got, out)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatalf("child failed:\n%s", out)
	}
}

func activatedChild() {
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	files, err := Listeners()
	if err != nil || len(files) != 1 {
		println("Listeners:", len(files), err)
		os.Exit(1)
	}
	if _, ok := os.LookupEnv("LISTEN_PID"); ok {
		println("LISTEN_PID left in the environment")
		os.Exit(1)
	}
	ln, err := net.FileListener(files[0])
	if err != nil {
		println("FileListener:", err.Error())
		os.Exit(1)
	}
	c, err := ln.Accept()
	if err != nil {
		println("Accept:", err.Error())
		os.Exit(1)
	}
	c.Write([]byte(files[0].Name()))
	c.Close()
}
