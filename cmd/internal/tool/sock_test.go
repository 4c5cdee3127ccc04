// SPDX-License-Identifier: Apache-2.0

package tool

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the other user of these tests (root only can play it).
const nobody = 65534

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as another user")
	}
}

func TestDefaultSocketDir(t *testing.T) {
	own := t.TempDir()
	os.Chmod(own, 0o700)
	uid := os.Geteuid()
	if uid == 0 { // play a user who owns own
		uid = 4321
		os.Chown(own, uid, uid)
	}
	tmp := "/tmp/distcache-" + strconv.Itoa(uid)
	for _, c := range []struct {
		uid     int
		runtime string
		want    string
	}{
		{0, own, "/run/distcache"},
		{0, "", "/run/distcache"},
		{uid, own, own + "/distcache"},
		{uid, "", tmp},
		{uid, "relative/dir", tmp},
		{uid + 1, own, "/tmp/distcache-" + strconv.Itoa(uid+1)}, // not that user's own
	} {
		if got := defaultSocketDir(c.uid, c.runtime); got != c.want {
			t.Errorf("defaultSocketDir(%d, %q) = %q, want %q", c.uid, c.runtime, got, c.want)
		}
	}
	os.Chmod(own, 0o777)
	if got := defaultSocketDir(uid, own); got != tmp {
		t.Errorf("a runtime directory others can write to was used: %q", got)
	}
}

func TestPrepareSocketDir(t *testing.T) {
	base := t.TempDir()
	dir := base + "/run"
	if err := PrepareSocketDir(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
		t.Fatalf("made %v, %v", fi.Mode(), err)
	}
	if err := PrepareSocketDir(dir); err != nil {
		t.Fatalf("again: %v", err)
	}
	os.Chmod(dir, 0o777)
	if err := PrepareSocketDir(dir); err == nil || !strings.Contains(err.Error(), "can be written by others (mode 0777)") {
		t.Errorf("a directory others can write to: %v", err)
	}
	os.WriteFile(base+"/file", nil, 0o600)
	if err := PrepareSocketDir(base + "/file"); err == nil || !strings.Contains(err.Error(), "is not a directory (a regular file owned by") {
		t.Errorf("a regular file in the way: %v", err)
	}
	if os.Geteuid() == 0 {
		os.Mkdir(base+"/theirs", 0o755)
		os.Chown(base+"/theirs", nobody, nobody)
		if err := PrepareSocketDir(base + "/theirs"); err == nil || !strings.Contains(err.Error(), "belongs to user 'nobody' (uid 65534)") {
			t.Errorf("another user's directory: %v", err)
		}
	}
}

// TestMain doubles as the daemon of TestUpgradeSignalBeforeOnSignal (with
// DC_TEST_EARLY_UPGRADE set), as the squatter: with DC_TEST_SQUAT set it listens on
// that unix path, says so on stdout, and waits to be killed; and as the
// other user's client: with DC_TEST_CONNECT set it connects to that unix
// path and says "connected" or why not.
func TestMain(m *testing.M) {
	if os.Getenv("DC_TEST_EARLY_UPGRADE") != "" {
		earlyUpgradeHelper()
	}
	if p := os.Getenv("DC_TEST_CONNECT"); p != "" {
		c, err := net.Dial("unix", p)
		if err != nil {
			os.Stdout.WriteString("refused: " + err.Error() + "\n")
			os.Exit(1)
		}
		c.Close()
		os.Stdout.WriteString("connected\n")
		os.Exit(0)
	}
	if p := os.Getenv("DC_TEST_SQUAT"); p != "" {
		ln, err := net.Listen("unix", p)
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("listening\n")
		for {
			c, err := ln.Accept()
			if err == nil {
				c.Close()
			}
		}
	}
	os.Exit(m.Run())
}

// Issue #10 item 6: a live socket of another user is refused with who
// holds it and how to fix it; a file in the way is reported with its
// owner; a stale socket is replaced.
func TestListenSquatted(t *testing.T) {
	dir := sharedDir(t, 0o1777) // a /tmp-like directory
	path := filepath.Join(dir, "scache")
	cmd := asNobody(t, dir, "DC_TEST_SQUAT="+path)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make([]byte, 64)
	n, _ := out.Read(line)
	if !strings.HasPrefix(string(line[:n]), "listening") {
		t.Fatalf("squatter: %q", line[:n])
	}
	a, _ := ParseAddr("UNIX:" + path)
	_, err := Listen(a)
	if err == nil {
		t.Fatal("listened on another user's live socket")
	}
	for _, want := range []string{"another server is already listening there, of another user",
		"pid " + strconv.Itoa(cmd.Process.Pid), "user 'nobody' (uid 65534)", "rm " + path, "/run/distcache"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}

	// A regular file of another user in the way.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	os.Chown(file, nobody, nobody)
	a, _ = ParseAddr("UNIX:" + file)
	if _, err := Listen(a); err == nil || !strings.Contains(err.Error(), "exists and is not a socket (a regular file owned by user 'nobody' (uid 65534))") {
		t.Errorf("regular file: %v", err)
	}

	// The squatter gone, its stale socket is replaced.
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := Listen(ParseAddrMust(t, "UNIX:"+path))
		if err == nil {
			l.Close()
			l.RemoveSocket()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stale socket not replaced: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ParseAddrMust(t *testing.T, s string) Addr {
	a, err := ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// sharedDir is a new directory of the given mode under /tmp, removed at
// the end of the test (root only: the test is skipped otherwise).
func sharedDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	needRoot(t)
	dir, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, mode)
	return dir
}

// asNobody is a command that runs this test binary, copied to dir (the
// original is where nobody can run it), as nobody, group nogroup, with
// env added to the environment.
func asNobody(t *testing.T, dir string, env ...string) *exec.Cmd {
	t.Helper()
	bin := dir + "/helper"
	if _, err := os.Stat(bin); err != nil {
		b, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	return cmd
}

// otherUser reports whether nobody can connect to the unix socket at path
// (asNobody in dir), and what the client said.
func otherUser(t *testing.T, dir, path string) (bool, string) {
	t.Helper()
	out, err := asNobody(t, dir, "DC_TEST_CONNECT="+path).Output()
	return err == nil && strings.HasPrefix(string(out), "connected"), string(out)
}

// Issue 12 item 3: a unix socket is owner-only (0600) whatever the umask,
// so that no other user can connect unless asked; -sockgroup alone opens
// it to that group (0660), -sockperms sets the mode outright.
func TestSocketOwnerOnlyUnlessAsked(t *testing.T) {
	dir := sharedDir(t, 0o755)
	// The most permissive umask: the mode must not come from it.
	defer syscall.Umask(syscall.Umask(0))
	for i, tc := range []struct {
		name    string
		d       Daemon
		mode    os.FileMode
		group   int // -1: the creator's
		connect bool
	}{
		{"default", Daemon{}, 0o600, -1, false},
		{"-sockperms 0666", Daemon{SockPerms: "0666"}, 0o666, -1, true},
		{"-sockgroup nogroup", Daemon{SockGroup: "nogroup"}, 0o660, nobody, true},
		{"-sockgroup nogroup -sockperms 0600", Daemon{SockGroup: "nogroup", SockPerms: "0600"}, 0o600, nobody, false},
		{"-sockowner nobody", Daemon{SockOwner: "nobody"}, 0o600, nobody, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "s"+strconv.Itoa(i))
			ln, err := Listen(ParseAddrMust(t, "UNIX:"+path))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { ln.Close(); ln.RemoveSocket() }()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			tc.d.SetupSocket(ln)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tc.mode {
				t.Errorf("mode %04o, want %04o", fi.Mode().Perm(), tc.mode)
			}
			if gid := int(fi.Sys().(*syscall.Stat_t).Gid); tc.group >= 0 && gid != tc.group {
				t.Errorf("group %d, want %d", gid, tc.group)
			}
			if ok, out := otherUser(t, dir, path); ok != tc.connect {
				t.Errorf("another user connecting: %q, want connected=%v", out, tc.connect)
			}
		})
	}
}
