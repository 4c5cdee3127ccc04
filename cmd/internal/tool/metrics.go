// SPDX-License-Identifier: Apache-2.0

package tool

import (
	"errors"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/distcache-go/distcache/goimpl/metrics"
)

// DumpSignal asks a daemon started with -metrics to print its counters
// once. The original uses SIGUSR1 and SIGUSR2 (-killable), SIGHUP reloads
// TLS files, and SIGWINCH is ignored by default and never sent to a
// detached daemon, so it does not clash.
const DumpSignal = syscall.SIGWINCH

// Metrics holds the -metrics and -metricspublic options of dc_server and
// dc_client and runs the metrics endpoint.
type Metrics struct {
	Addr   string
	Public bool
	// Inherit is where a successor started by Upgrade finds the metrics
	// listener among its inherited descriptors (Inherited's index): the
	// daemon puts File's result at that place in Upgrader.Files.
	Inherit int

	srv *metrics.Server
	ln  net.Listener
}

// Option consumes -metrics or -metricspublic; false for any other option.
func (m *Metrics) Option(a *Args) bool {
	switch a.Opt() {
	case "-metrics":
		m.Addr = a.Value()
		if ad, err := ParseAddr(m.Addr); err != nil || ad.Network == "unix" && ad.Address == "" {
			a.Invalid()
		}
	case "-metricspublic":
		m.Public = true
	default:
		return false
	}
	return true
}

// Start makes the daemon's Registry and serves it on -metrics, or returns
// nil when -metrics was not given. Call it after Daemon.Listen and before
// Daemon.Start: a -daemon parent only makes the Registry (its child binds
// the address and reports a failure through the parent). An address that
// cannot be used is fatal.
func (m *Metrics) Start(program string, d *Daemon) *metrics.Registry {
	if m.Addr == "" {
		return nil
	}
	r := metrics.New(metrics.Options{Program: program})
	if d.Detach && !IsDaemonChild() {
		return r
	}
	a, err := ParseAddr(m.Addr)
	if err != nil {
		Die("Error, bad -metrics address '%s': %v", m.Addr, err)
	}
	var ln net.Listener
	if IsSuccessor() {
		// The predecessor's listener: the port is never unbound.
		f := Inherited(m.Inherit)
		ln, err = net.FileListener(f)
		f.Close()
	} else {
		ln, err = metrics.Listen(a.Network, a.Address, m.Public)
	}
	if err != nil {
		if d.Cleanup != nil {
			d.Cleanup()
		}
		hint := ""
		if errors.Is(err, metrics.ErrNotLoopback) {
			hint = "; -metricspublic allows it"
		}
		Die("Error, can't serve metrics on '%s': %v%s", m.Addr, err, hint)
	}
	m.ln, m.srv = ln, r.Serve(ln)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, DumpSignal)
	go func() {
		for range sig {
			r.Dump(os.Stderr)
		}
	}()
	return r
}

// File returns a duplicate of the metrics listener's descriptor for a
// successor (nil without -metrics).
func (m *Metrics) File() (*os.File, error) {
	if m.ln == nil {
		return nil, nil
	}
	fl, ok := m.ln.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, errors.New("the metrics listener cannot be handed over")
	}
	return fl.File()
}

// Keep leaves a unix metrics socket in place when Stop closes it: the
// successor serves on it.
func (m *Metrics) Keep() {
	if ul, ok := m.ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
}

// Stop closes the metrics endpoint.
func (m *Metrics) Stop() {
	if m.srv != nil {
		m.srv.Close()
	}
}
