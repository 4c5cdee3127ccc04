// SPDX-License-Identifier: Apache-2.0

package tool

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/distcache-go/distcache/goimpl/accept"
	"github.com/distcache-go/distcache/goimpl/seal"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/tlsconf"
)

// Secure holds the TLS and sealing options of dc_server and dc_client:
// -tlscert, -tlskey, -tlsca, -tls12, -sealkey, and on the client side
// -tlsname. File names are made absolute, so that they mean the same
// after a -daemon re-exec into "/".
type Secure struct {
	TLS     tlsconf.Options
	SealKey string
	Client  bool // accept -tlsname

	reload []reloader
	keys   *seal.Keyring
}

type reloader struct {
	what string
	fn   func() error
}

// Option consumes one of the security options; false if opt is not one.
func (s *Secure) Option(a *Args) bool {
	switch a.Opt() {
	case "-tlscert":
		s.TLS.Cert = absValue(a)
	case "-tlskey":
		s.TLS.Key = absValue(a)
	case "-tlsca":
		s.TLS.CA = absValue(a)
	case "-tls12":
		s.TLS.AllowTLS12 = true
	case "-sealkey":
		s.SealKey = absValue(a)
	case "-tlsname":
		if !s.Client {
			return false
		}
		s.TLS.Name = a.Value()
	default:
		return false
	}
	return true
}

func absValue(a *Args) string {
	v := a.Value()
	if abs, err := absPath(v); err == nil {
		a.SetValue(abs)
		return abs
	}
	return v
}

// TLSOn reports whether any TLS option was given (the client speaks TLS
// to its server then, even with only -tlsca or -tlsname).
func (s *Secure) TLSOn() bool {
	o := s.TLS
	return o.Cert != "" || o.Key != "" || o.CA != "" || o.Name != "" || o.AllowTLS12
}

// Server loads the server side of TLS, or returns nil without TLS
// options. Errors are fatal: they are reported and the process exits.
func (s *Secure) Server() *tlsconf.Server {
	if !s.TLSOn() {
		return nil
	}
	if s.TLS.Cert == "" || s.TLS.Key == "" {
		Die("Error, TLS needs both -tlscert and -tlskey")
	}
	srv, err := tlsconf.NewServer(s.TLS)
	if err != nil {
		Die("Error, can't set up TLS: %v", err)
	}
	s.reload = append(s.reload, reloader{"TLS certificates", srv.Reload})
	return srv
}

// ClientTLS loads the client side of TLS, or returns nil without TLS options.
func (s *Secure) ClientTLS() *tlsconf.Client {
	if !s.TLSOn() {
		return nil
	}
	c, err := tlsconf.NewClient(s.TLS)
	if err != nil {
		Die("Error, can't set up TLS: %v", err)
	}
	s.reload = append(s.reload, reloader{"TLS certificates", c.Reload})
	return c
}

// LoadSealKey reads the -sealkey file, if given (before the user switch
// and before any socket exists: a bad file is fatal).
func (s *Secure) LoadSealKey() {
	if s.SealKey == "" {
		return
	}
	kr, err := seal.LoadKeyFile(s.SealKey)
	if err != nil {
		Die("Error, can't use -sealkey: %v", err)
	}
	s.keys = kr
}

// Keys returns the sealing keys LoadSealKey loaded (nil: none).
func (s *Secure) Keys() *seal.Keyring { return s.keys }

// Seal wraps st in the sealing store when LoadSealKey loaded keys.
func (s *Secure) Seal(st store.Store, log accept.Logger) store.Store {
	if s.keys == nil {
		return st
	}
	ss := seal.New(st, s.keys, seal.Options{Logf: log.Printf})
	s.reload = append(s.reload, reloader{"sealing keys", ss.Reload})
	return ss
}

// ReloadOnHUP, when something was loaded from files, reloads it all on
// every SIGHUP, saying on stderr what was reloaded or why not (the
// previous certificates or keys then stay in use). Without TLS or
// sealing, SIGHUP keeps its default action.
func (s *Secure) ReloadOnHUP() {
	if len(s.reload) == 0 {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			for _, r := range s.reload {
				if err := r.fn(); err != nil {
					fmt.Fprintf(os.Stderr, "Error, SIGHUP: can't reload the %s, keeping those in use: %v\n", r.what, err)
				} else {
					fmt.Fprintf(os.Stderr, "Info, SIGHUP: reloaded the %s\n", r.what)
				}
			}
		}
	}()
}

// WarnExposed says once, at start-up, when dc_server can be reached from
// other hosts without protection: a TCP listener without TLS on an
// address other than loopback, or -sessiond (plaintext and
// unauthenticated by stunnel's design) on one.
func WarnExposed(listen Addr, tlsOn bool, sessiond string) {
	if !tlsOn && exposed(listen) {
		fmt.Fprintf(os.Stderr, "Warning, listening on '%s' without TLS: whoever can reach it can read, delete and plant sessions (give -tlscert, -tlskey and -tlsca, or listen on loopback or a unix socket)\n", listen.Str)
	}
	if sessiond != "" {
		if a, err := ParseAddr(sessiond); err == nil && exposed(a) {
			fmt.Fprintf(os.Stderr, "Warning, -sessiond on '%s', not a loopback address: stunnel's sessiond protocol has no encryption or authentication, so whoever can reach it can read and plant sessions\n", sessiond)
		}
	}
}

// exposed reports whether a is a TCP address that is not loopback only.
func exposed(a Addr) bool {
	if a.Network != "tcp4" && a.Network != "tcp6" {
		return false
	}
	if a.Wildcard {
		return true
	}
	host, _, err := net.SplitHostPort(a.Address)
	if err != nil {
		return true
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}
