// Package server is the distcache server side: the session caches (the
// Cache interface, the original's default cache contract, and a sharded,
// byte-bounded cache for our own dc_server), Handle, which answers one
// request message exactly as the original server does, and the DC_SERVER
// object model that the C ABI exports.
package server
