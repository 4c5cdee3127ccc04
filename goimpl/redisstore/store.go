// SPDX-License-Identifier: Apache-2.0

package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// Defaults for Options.
const (
	DefaultPrefix  = "dc:"
	DefaultTimeout = 50 * time.Millisecond
	// DefaultDialTimeout bounds one connection attempt (TCP and TLS
	// handshakes, AUTH, SELECT); operations never wait for it longer
	// than their own deadline.
	DefaultDialTimeout = time.Second
	// DefaultRetry is the pause between attempts to make the first
	// connection when Redis was unreachable at Open.
	DefaultRetry = 500 * time.Millisecond
)

// PasswordEnv is the environment variable a password is taken from when
// no password file is given; SentinelPasswordEnv likewise for sentinels.
const (
	PasswordEnv         = "DC_REDIS_PASSWORD"
	SentinelPasswordEnv = "DC_REDIS_SENTINEL_PASSWORD"
)

// Options configure a Store. Only Addr is required.
type Options struct {
	Addr    string        // see ParseAddr
	Prefix  string        // prepended to every session id (default "dc:"; "-" for none)
	Timeout time.Duration // deadline of each operation (default 50 ms)
	// DialTimeout bounds one connection attempt (default 1 s).
	DialTimeout time.Duration
	// Password of Addr's user, and of the sentinels (Sentinel only).
	Password, SentinelPassword string
	// TLS gives the configuration for a TLS connection to addr
	// (host:port) for rediss addresses, asked at every dial so reloaded
	// certificates apply to new connections (tlsconf.Client.Config fits).
	// nil: the system roots, and the host name from the address.
	TLS func(addr string) *tls.Config
	// Logf, if set, is told about connection failures at Open.
	Logf func(format string, args ...any)
}

// Password reads a password: the first line of file when file is not "",
// else the environment variable env ("" when unset).
func Password(file, env string) (string, error) {
	if file == "" {
		return os.Getenv(env), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimRight(line, "\r"), nil
}

// Store is a store.Store on Redis. It is safe for concurrent use.
type Store struct {
	addr    *Addr
	prefix  string
	timeout time.Duration

	client atomic.Pointer[rueidis.Client]
	// lastErr is why there is no client yet (an error).
	lastErr atomic.Value
	stop    chan struct{}
	wg      sync.WaitGroup
	closed  atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open makes a Store. An address or option error is returned at once.
// When Redis cannot be reached, Open still returns the Store: it connects
// in the background (every DefaultRetry) and its operations fail with
// ErrUnavailable meanwhile. Once connected, reconnection after a lost
// connection and following a Sentinel or Cluster failover are automatic.
func Open(opts Options) (*Store, error) {
	a, err := ParseAddr(opts.Addr)
	if err != nil {
		return nil, err
	}
	s := &Store{addr: a, prefix: opts.Prefix, timeout: opts.Timeout, stop: make(chan struct{})}
	switch s.prefix {
	case "":
		s.prefix = DefaultPrefix
	case "-":
		s.prefix = ""
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	opts.Timeout = s.timeout
	co := clientOption(a, &opts)
	c, err := rueidis.NewClient(co)
	if err == nil {
		s.client.Store(&c)
		return s, nil
	}
	s.lastErr.Store(err)
	if opts.Logf != nil {
		opts.Logf("redis %s: %v (retrying in the background)", a, err)
	}
	s.wg.Add(1)
	go s.connect(co)
	return s, nil
}

func clientOption(a *Addr, o *Options) rueidis.ClientOption {
	dt := o.DialTimeout
	if dt <= 0 {
		dt = DefaultDialTimeout
	}
	co := rueidis.ClientOption{
		InitAddress:  a.Hosts,
		Username:     a.Username,
		Password:     o.Password,
		SelectDB:     a.DB,
		DisableCache: true, // no client-side caching: another host may remove a session
		Dialer:       netDialer(dt),
		// A connection whose writes stall this long is dropped and
		// redialled; operations have their own, shorter, deadline.
		ConnWriteTimeout: max(dt, 10*o.Timeout),
		ClientName:       "distcache",
	}
	if a.TLS {
		// Only a marker for dial: the configuration is made per dial.
		co.TLSConfig = &tls.Config{}
		co.DialCtxFn = tlsDialer(o.TLS)
	}
	switch a.Kind {
	case Standalone:
		co.ForceSingleClient = true
	case Sentinel:
		co.Sentinel = rueidis.SentinelOption{
			MasterSet:               a.Master,
			Password:                o.SentinelPassword,
			Dialer:                  netDialer(dt),
			TLSConfig:               co.TLSConfig,
			TopologyRefreshInterval: 2 * time.Second,
		}
	case Cluster:
		co.ClusterOption = rueidis.ClusterOption{ShardsRefreshInterval: 2 * time.Second}
	}
	return co
}

// connect retries the first connection until it succeeds or the store
// is closed.
func (st *Store) connect(co rueidis.ClientOption) {
	defer st.wg.Done()
	t := time.NewTicker(DefaultRetry)
	defer t.Stop()
	for {
		select {
		case <-st.stop:
			return
		case <-t.C:
		}
		c, err := rueidis.NewClient(co)
		if err != nil {
			st.lastErr.Store(err)
			continue
		}
		st.client.Store(&c)
		if st.closed.Load() { // Close ran between the check and the store
			c.Close()
		}
		return
	}
}

// Addr returns the parsed address the store talks to.
func (st *Store) Addr() *Addr { return st.addr }

// Close implements store.Store.
func (st *Store) Close() error {
	if st.closed.Swap(true) {
		return nil
	}
	close(st.stop)
	st.wg.Wait()
	if c := st.client.Load(); c != nil {
		(*c).Close()
	}
	return nil
}

// Error is the error of a failed operation; it wraps store.ErrUnavailable
// and the cause.
type Error struct {
	Op   string // add, get, remove, have, take
	Addr string
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("redis %s %s: %v", e.Op, e.Addr, e.Err)
}

// Unwrap gives store.ErrUnavailable and the cause.
func (e *Error) Unwrap() []error { return []error{store.ErrUnavailable, e.Err} }

var errNotConnected = errors.New("not connected")

// do runs one command under the store's deadline. The client is asked in
// a goroutine of its own: it honours the deadline while it waits for an
// answer, but not everywhere (a slot map refresh after a cluster node
// died, a dial), and no caller may wait past the deadline.
func (st *Store) do(ctx context.Context, op string, build func(rueidis.Builder) rueidis.Completed) (rueidis.RedisResult, error) {
	cp := st.client.Load()
	if cp == nil {
		cause := errNotConnected
		if e, ok := st.lastErr.Load().(error); ok {
			cause = fmt.Errorf("%w: %v", errNotConnected, e)
		}
		return rueidis.RedisResult{}, &Error{op, st.addr.String(), cause}
	}
	c := *cp
	ctx, cancel := context.WithTimeout(ctx, st.timeout)
	defer cancel()
	cmd := build(c.B())
	ch := make(chan rueidis.RedisResult, 1)
	go func() { ch <- c.Do(ctx, cmd) }()
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return rueidis.RedisResult{}, st.fail(op, ctx.Err())
	}
}

func (st *Store) fail(op string, err error) error {
	return &Error{op, st.addr.String(), err}
}

func (st *Store) key(id []byte) string { return st.prefix + string(id) }

// validID reports whether id is in distcache's range; no entry can have
// an id outside it, so lookups of one are misses without asking Redis.
func validID(id []byte) bool { return len(id) > 0 && len(id) <= proto.MaxIDLen }

// Add implements store.Store: SET key data NX PX ttl. A ttl under one
// millisecond stores nothing (the entry would be gone by the next
// request) but still reports a live duplicate.
func (st *Store) Add(ctx context.Context, id, data []byte, ttl time.Duration) error {
	if !validID(id) || len(data) == 0 || len(data) > proto.MaxDataLen || ttl < 0 || ttl > proto.MaxExpiry*time.Millisecond {
		return fmt.Errorf("%w: %d-byte id, %d bytes of data for %v", store.ErrInvalid, len(id), len(data), ttl)
	}
	k := st.key(id)
	ms := ttl.Milliseconds()
	if ms == 0 {
		err := st.Have(ctx, id)
		switch {
		case err == nil:
			return store.ErrDuplicate
		case errors.Is(err, store.ErrNotFound):
			return nil
		}
		return err
	}
	// The value is copied: after a deadline the command may still be
	// queued, and the caller may reuse data.
	r, err := st.do(ctx, "add", func(b rueidis.Builder) rueidis.Completed {
		return command(b, "add", k, data, ms)
	})
	if err != nil {
		return err
	}
	return st.addResult(r)
}

// addResult is Add's result from SET's answer.
func (st *Store) addResult(r rueidis.RedisResult) error {
	switch err := r.Error(); {
	case err == nil:
		return nil
	case rueidis.IsRedisNil(err):
		return store.ErrDuplicate
	default:
		return st.fail("add", err)
	}
}

// command is op's Redis command on key k, for the blocking methods and
// Start alike: add is SET k data NX PX ms (data copied: the command may
// still be queued after a deadline, and the caller may reuse data), take
// GETDEL, get GET, remove DEL, have EXISTS.
func command(b rueidis.Builder, op, k string, data []byte, ms int64) rueidis.Completed {
	switch op {
	case "add":
		return b.Set().Key(k).Value(string(data)).Nx().PxMilliseconds(ms).Build()
	case "take":
		return b.Getdel().Key(k).Build()
	case "get":
		return b.Get().Key(k).Build()
	case "remove":
		return b.Del().Key(k).Build()
	default:
		return b.Exists().Key(k).Build()
	}
}

// Get implements store.Store.
func (st *Store) Get(ctx context.Context, id, dst []byte) ([]byte, error) {
	return st.get(ctx, "get", id, dst)
}

// Take implements store.Store with GETDEL (atomic in Redis).
func (st *Store) Take(ctx context.Context, id, dst []byte) ([]byte, error) {
	return st.get(ctx, "take", id, dst)
}

func (st *Store) get(ctx context.Context, op string, id, dst []byte) ([]byte, error) {
	if !validID(id) {
		return dst, store.ErrNotFound
	}
	k := st.key(id)
	r, err := st.do(ctx, op, func(b rueidis.Builder) rueidis.Completed {
		return command(b, op, k, nil, 0)
	})
	if err != nil {
		return dst, err
	}
	return st.getResult(op, r, dst)
}

// getResult is Get's or Take's result from the answer, appended to dst.
func (st *Store) getResult(op string, r rueidis.RedisResult, dst []byte) ([]byte, error) {
	v, err := r.ToString()
	switch {
	case err == nil:
		return append(dst, v...), nil
	case rueidis.IsRedisNil(err):
		return dst, store.ErrNotFound
	default:
		return dst, st.fail(op, err)
	}
}

// Remove implements store.Store (DEL).
func (st *Store) Remove(ctx context.Context, id []byte) error {
	return st.count(ctx, "remove", id)
}

// Have implements store.Store (EXISTS).
func (st *Store) Have(ctx context.Context, id []byte) error {
	return st.count(ctx, "have", id)
}

func (st *Store) count(ctx context.Context, op string, id []byte) error {
	if !validID(id) {
		return store.ErrNotFound
	}
	k := st.key(id)
	r, err := st.do(ctx, op, func(b rueidis.Builder) rueidis.Completed {
		return command(b, op, k, nil, 0)
	})
	if err != nil {
		return err
	}
	return st.countResult(op, r)
}

// countResult is Remove's or Have's result from the answer (a count).
func (st *Store) countResult(op string, r rueidis.RedisResult) error {
	n, err := r.AsInt64()
	switch {
	case err != nil:
		return st.fail(op, err)
	case n == 0:
		return store.ErrNotFound
	}
	return nil
}

var _ store.Async = (*Store)(nil)

// Start implements store.Async: the command is built (the id and data
// copied) and given to the client from a goroutine, the one each
// blocking call makes too, which completes the call with the answer, or
// with a timeout error at the store's deadline if the client has not
// answered by then (the answer is then dropped). Start declines what
// the blocking methods answer without asking Redis or ask it otherwise
// (no client yet, an invalid request, an ADD under a millisecond), and
// what it does not know.
func (st *Store) Start(c *store.Call) bool {
	cp := st.client.Load()
	if cp == nil || !validID(c.ID) {
		return false
	}
	cl := *cp
	k := st.key(c.ID)
	var op string
	var cmd rueidis.Completed
	switch c.Op {
	case proto.OpAdd:
		ms := c.TTL.Milliseconds()
		if len(c.Data) == 0 || len(c.Data) > proto.MaxDataLen || ms <= 0 || c.TTL > proto.MaxExpiry*time.Millisecond {
			return false
		}
		op, cmd = "add", command(cl.B(), "add", k, c.Data, ms)
	case proto.OpGet:
		op, cmd = "get", command(cl.B(), "get", k, nil, 0)
	case proto.OpRemove:
		op, cmd = "remove", command(cl.B(), "remove", k, nil, 0)
	case proto.OpHave:
		op, cmd = "have", command(cl.B(), "have", k, nil, 0)
	default:
		return false
	}
	go st.finish(cl, op, cmd, c)
	return true
}

// finish carries out a call Start started.
func (st *Store) finish(cl rueidis.Client, op string, cmd rueidis.Completed, c *store.Call) {
	ctx, cancel := context.WithTimeout(context.Background(), st.timeout)
	var done atomic.Bool // the call was completed (once)
	stop := context.AfterFunc(ctx, func() {
		if done.CompareAndSwap(false, true) {
			c.Res, c.Err = c.Dst, st.fail(op, ctx.Err())
			c.Done.Complete(c)
		}
	})
	r := cl.Do(ctx, cmd)
	stop() // before cancel, which would run it
	cancel()
	if !done.CompareAndSwap(false, true) {
		return // timed out: c may be another call's by now
	}
	c.Res, c.Err = c.Dst, nil
	switch c.Op {
	case proto.OpAdd:
		c.Err = st.addResult(r)
	case proto.OpGet:
		c.Res, c.Err = st.getResult(op, r, c.Dst)
	default:
		c.Err = st.countResult(op, r)
	}
	c.Done.Complete(c)
}
