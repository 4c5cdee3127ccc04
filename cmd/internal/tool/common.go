// SPDX-License-Identifier: Apache-2.0

package tool

import (
	"fmt"
	"github.com/distcache-go/distcache/goimpl/accept"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// Daemon holds the options every long-running tool shares (-daemon,
// -pidfile, -user, -sockowner, -sockgroup, -sockperms, -killable) and
// carries them out in the original order: listener first, then socket
// ownership, then detaching, the pid file and the user switch.
type Daemon struct {
	Detach    bool
	PIDFile   string
	User      string
	SockOwner string
	SockGroup string
	SockPerms string
	Killable  bool
	// Cleanup runs before a startup failure exits (removes the socket file).
	Cleanup func()

	cred *Cred
}

// Option consumes one of the shared options; it reports false if opt is
// not one of them. Paths are made absolute here, so they mean the same
// thing after a re-exec into "/".
func (d *Daemon) Option(a *Args) bool {
	switch a.Opt() {
	case "-daemon":
		d.Detach = true
	case "-pidfile":
		d.PIDFile = a.Value()
		if abs, err := absPath(d.PIDFile); err == nil {
			d.PIDFile = abs
			a.SetValue(abs)
		}
	case "-user":
		d.User = a.Value()
	case "-sockowner":
		d.SockOwner = a.Value()
	case "-sockgroup":
		d.SockGroup = a.Value()
	case "-sockperms":
		d.SockPerms = a.Value()
	case "-killable":
		d.Killable = true
	default:
		return false
	}
	return true
}

// Check resolves -user before anything is created, so an unknown user
// fails at once in the foreground.
func (d *Daemon) Check() {
	if d.User == "" {
		return
	}
	c, err := LookupUser(d.User)
	if err != nil {
		Die("Error, couldn't become user '%s': %v", d.User, err)
	}
	d.cred = c
}

// Listen opens the listening socket of address listen: inherited from the
// parent in a -daemon child, passed by systemd under socket activation
// ($LISTEN_PID/$LISTEN_FDS; see activated), bound now otherwise. It applies the socket
// options, arranges the unix socket's removal at exit, and returns with it
// the descriptors a -daemon parent hands to its child (for Start).
func (d *Daemon) Listen(listen string) (*Listener, []*os.File, error) {
	addr, err := ParseAddr(listen)
	if err != nil {
		return nil, nil, err
	}
	var ln *Listener
	if IsDaemonChild() {
		ln, err = FromFile(Inherited(0), addr)
	} else if f, aerr := activated(addr); aerr != nil || f != nil {
		if aerr != nil {
			return nil, nil, aerr
		}
		if d.Detach {
			f.Close()
			return nil, nil, errActivatedDaemon
		}
		ln, err = activatedListener(f, addr)
		return ln, nil, err
	} else {
		ln, err = Listen(addr)
	}
	if err != nil {
		return nil, nil, err
	}
	d.SetupSocket(ln)
	d.Cleanup = ln.RemoveSocket
	if !d.Detach || IsDaemonChild() {
		return ln, nil, nil
	}
	f, err := ln.File()
	if err != nil {
		ln.RemoveSocket()
		ln.Close()
		return nil, nil, err
	}
	return ln, []*os.File{f}, nil
}

// SetupSocket applies -sockowner/-sockgroup/-sockperms to a unix listener
// (failure only warns, as in the original). Listen made the socket 0600;
// -sockgroup without -sockperms makes it 0660, so that the group named
// can connect.
func (d *Daemon) SetupSocket(l *Listener) {
	if l.Where.Network != "unix" || IsDaemonChild() {
		return
	}
	if d.SockOwner != "" || d.SockGroup != "" {
		if err := SockOwner(l.Where.Address, d.SockOwner, d.SockGroup); err != nil {
			fmt.Fprintf(os.Stderr, "Warning, can't set socket ownership to user '%s' and group '%s', continuing anyway (%v)\n",
				nullOr(d.SockOwner), nullOr(d.SockGroup), err)
		}
	}
	perms := d.SockPerms
	if perms == "" && d.SockGroup != "" {
		perms = "0660" // the group was named so that its members may connect
	}
	if perms != "" {
		if err := SockPerms(l.Where.Address, perms); err != nil {
			fmt.Fprintf(os.Stderr, "Warning, can't set socket permissions to '%s', continuing anyway (%v)\n", perms, err)
		}
	}
}

// Start detaches (re-executing with args and the given descriptors) if
// -daemon was given and this is not yet the child, then writes the pid
// file and switches user. It reports readiness to a waiting parent.
func (d *Daemon) Start(args []string, files []*os.File) {
	if d.Detach && !IsDaemonChild() {
		Detach(args, files)
	}
	for _, f := range files {
		f.Close()
	}
	holdUpgradeSignal() // before anything names this process
	if d.PIDFile != "" {
		if err := writePIDFile(d.PIDFile); err != nil {
			d.cleanup()
			Die("Error, couldn't open 'pidfile' at '%s': %v", d.PIDFile, unwrapPath(err))
		}
	}
	if d.cred != nil {
		if err := d.cred.Apply(); err != nil {
			d.RemovePIDFile()
			d.cleanup()
			Die("Error, couldn't become user '%s': %v", d.User, err)
		}
	}
	Ready()
}

// writePIDFile writes this process's pid to the pid file and keeps it
// open: a successor started by Upgrade inherits it and rewrites it through
// the same descriptor, even as a user (-user) that could not open it.
func writePIDFile(path string) error {
	f := pidFile
	if f == nil {
		var err error
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644); err != nil {
			return err
		}
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return err
	}
	pidFile = f
	return nil
}

func (d *Daemon) cleanup() {
	if d.Cleanup != nil {
		d.Cleanup()
	}
}

// RemovePIDFile deletes the pid file if it still holds our pid.
func (d *Daemon) RemovePIDFile() {
	if d.PIDFile == "" {
		return
	}
	b, err := os.ReadFile(d.PIDFile)
	if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(d.PIDFile)
	}
}

// Signals returns a channel that receives SIGTERM and SIGINT, plus SIGUSR1
// and SIGUSR2 when killable; without -killable the USR signals are caught
// and ignored, as in the original.
func (d *Daemon) Signals() <-chan os.Signal {
	ch := make(chan os.Signal, 4)
	usr := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	signal.Notify(usr, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for s := range usr {
			if d.Killable {
				ch <- s
			}
		}
	}()
	return ch
}

func absPath(p string) (string, error) {
	if strings.HasPrefix(p, "/") {
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return wd + "/" + p, nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// RateLog is the rate-limited logger every tool reports through.
type RateLog = accept.RateLog

// ConnSet is the accept loop dc_server and dc_client share.
type ConnSet = accept.Set
