// SPDX-License-Identifier: Apache-2.0

// Command tlsfarm is an HTTPS server whose TLS sessions live in distcache,
// so that every instance behind a load balancer resumes the sessions of
// the others. Run one per host, each pointed at the host's dc_client (or
// straight at a dc_server):
//
//	tlsfarm -listen :8443 -cert cert.pem -key key.pem \
//	        -cache UNIX:/run/distcache/dc_client.sock [-singleuse]
//
// The session state (with its master secret) stays in the cache; clients
// hold only a random handle. With -singleuse each session resumes at most
// once across the farm (what a server accepting 0-RTT needs).
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/distcache-go/distcache/goimpl/tlscache"
	"github.com/distcache-go/distcache/goimpl/upstream"
)

func main() {
	listen := flag.String("listen", ":8443", "address to serve HTTPS on")
	cert := flag.String("cert", "", "certificate file (PEM)")
	key := flag.String("key", "", "private key file (PEM)")
	cache := flag.String("cache", "UNIX:/run/distcache/dc_client.sock", "distcache address of the session cache")
	lifetime := flag.Duration("lifetime", 5*time.Minute, "how long a session is kept")
	singleUse := flag.Bool("singleuse", false, "resume each session at most once across the farm")
	flag.Parse()
	if *cert == "" || *key == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := upstream.ServerAt(context.Background(), *cache)
	if err != nil {
		log.Fatal(err)
	}
	// A cache that does not answer within 100 ms costs a full handshake,
	// never a stalled one.
	sessions, err := upstream.New(upstream.Options{Servers: []upstream.Server{srv}, Timeout: 100 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	defer sessions.Close()
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}}
	tlscache.Configure(cfg, sessions, &tlscache.Options{
		Lifetime:  *lifetime,
		SingleUse: *singleUse,
		OnError:   func(op string, err error) { log.Printf("session cache %s: %v", op, err) },
	})
	hs := &http.Server{
		Addr:      *listen,
		TLSConfig: cfg,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "resumed: %v\n", r.TLS.DidResume)
		}),
	}
	log.Fatal(hs.ListenAndServeTLS("", ""))
}
