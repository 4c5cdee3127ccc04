// SPDX-License-Identifier: Apache-2.0

package evloop

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A Handler is told that its descriptor is readable, has hung up or failed.
type Handler interface {
	Ready()
}

// ErrWake is what Wait returns when Wake interrupted it.
var ErrWake = errors.New("evloop: woken")

// Loop is an epoll set served by one goroutine (Wait); Watch, Unwatch and
// Wait belong to that goroutine, Wake may be called from any.
type Loop struct {
	epd int // the epoll descriptor
	efd int // eventfd: Wake
	tfd int // timerfd: the tick while the Loop waits raw (RawWaits)

	// While the Loop parks: an epoll set of its own in the runtime's
	// poller, made on the first Wait that parks, which holds epd only
	// while the Loop parks (nested: a Loop with RawWaits takes epd out
	// of it when it goes back to raw waits).
	ep     *os.File
	epfd   int // ep's descriptor
	nested bool
	rc     syscall.RawConn
	waitFn func(uintptr) bool // pollFn, made once
	dl     time.Time          // the deadline set on ep

	h   []Handler // by descriptor
	ev  [64]syscall.EpollEvent
	n   int    // events returned by the last epoll wait
	cur uint32 // the events of the Handler being called
	// passive: the Handler being called said its event is an answer to
	// what the Loop did (Passive).
	passive bool

	raw     bool          // RawWaits (or RawWaitsWhile, while quiet says so)
	quiet   func() bool   // RawWaitsWhile past GOMAXPROCS-1: when raw waits may hold the last P
	period  time.Duration // of the tick (tick, slowTimer): waits are raw; 0: disarmed, the Loop parks
	busy    bool          // an event other than a tick since the last tick
	slowAt  int64         // slow: when the last tick was taken (mono; see tickCounts)
	lastEv  int64         // when the Loop last had events while not active (mono)
	noWait2 bool          // the kernel has no epoll_pwait2 (before Linux 5.11)
	yield   bool          // YieldBeforeWait on the only P: the next raw wait yields first

	// A trip through the runtime's poller (trip): an eventfd in it.
	tf       *os.File
	trc      syscall.RawConn
	tripFn   func(uintptr) bool
	tripping bool // tripFn's first call of a trip is past

	mu     sync.Mutex // Wake against Close
	closed bool
}

// New returns an empty Loop.
func New() (*Loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	l := &Loop{epd: epfd, efd: -1, tfd: -1}
	if err = l.open(); err != nil {
		for _, fd := range []int{l.tfd, l.efd, epfd} {
			if fd >= 0 {
				syscall.Close(fd)
			}
		}
		return nil, err
	}
	return l, nil
}

// open makes the Loop's eventfd (Wake) and watches it.
func (l *Loop) open() error {
	// Non-blocking, so that os.NewFile puts it in the netpoller (an epoll
	// descriptor is readable while it has events to report).
	if err := syscall.SetNonblock(l.epd, true); err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	efd, _, e := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if e != 0 {
		return os.NewSyscallError("eventfd2", e)
	}
	l.efd = int(efd)
	return ctl(l.epd, syscall.EPOLL_CTL_ADD, l.efd)
}

// RawWaits has the Loop wait in raw system calls while it has events
// coming (see the notes above Wait), from its next Wait on, instead of
// always parking its goroutine in the runtime's poller: for a Loop whose goroutine never
// waits elsewhere (dc_server's, answering from memory; dc_client's over
// an upstream whose calls it starts and whose answers it reads itself). A
// Loop whose goroutine also waits for other goroutines (dc_client's over
// a store that cannot start calls, for the store's answer) parks: an
// active Loop holds its P, and the goroutines it waits for would wait for
// that P's next tick.
//
// At most GOMAXPROCS-1 Loops of the process wait raw (none on one P):
// RawWaits does nothing for the others, which park. A P is so left to
// the runtime, whose poller is polled by a thread that finds nothing else
// to run. With every P held by a raw wait nothing polls it but the
// monitor thread, every 5-10 ms, and every goroutine that waits for a
// socket (in dc_server: a connection served by a goroutine, the metrics
// server, a handover) waits that long for each read; the ticks' yields do
// not help (the scheduler runs the goroutine that yielded again before it
// polls), nor do ordinary system calls for the waits beyond GOMAXPROCS-1
// (a short one keeps its P).
func (l *Loop) RawWaits() error { return l.rawWaits(nil) }

// RawWaitsWhile is RawWaits, and on one P, where RawWaits does nothing,
// the process's first such Loop waits raw too, but only while quiet
// reports true: its owner knows then that no goroutine of the process
// waits for a socket where a tick's delay would matter (dc_server: no
// connection is served by a goroutine, nothing else in the process serves
// clients). The Loop asks quiet when it becomes active and at each tick;
// while quiet says false it parks as without RawWaits. What else waits
// for the runtime's poller (a metrics scrape) is woken at the Loop's
// ticks, where it goes through the poller (trip): a tick's wait at most
// (10-20 ms while the Loop's events come milliseconds apart: the
// runtime's preemptions, slowTimer without them).
// On more Ps the Loop past GOMAXPROCS-1 parks: there a raw wait of the
// loop that accepts a connection per request cost more than it saved.
func (l *Loop) RawWaitsWhile(quiet func() bool) error { return l.rawWaits(quiet) }

func (l *Loop) rawWaits(quiet func() bool) error {
	if l.raw || l.quiet != nil {
		return nil
	}
	n := rawLoops.Add(1)
	switch max := int32(runtime.GOMAXPROCS(0)); {
	case n < max:
		quiet = nil // within the limit: always raw
	case n > max || max > 1 || quiet == nil:
		rawLoops.Add(-1)
		return nil
	}
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		rawLoops.Add(-1)
		return os.NewSyscallError("timerfd_create", err)
	}
	if err := ctl(l.epd, syscall.EPOLL_CTL_ADD, tfd); err != nil {
		rawLoops.Add(-1)
		syscall.Close(tfd)
		return err
	}
	l.tfd, l.raw, l.quiet = tfd, quiet == nil, quiet
	return nil
}

// WaitsRaw reports whether RawWaits or RawWaitsWhile took effect: the
// Loop waits raw while its events come often (for RawWaitsWhile, also
// only while its quiet says so), and a caller spreading work over Loops
// may prefer it to one that always parks. For the Loop's goroutine, or
// before it starts.
func (l *Loop) WaitsRaw() bool { return l.tfd >= 0 }

// rawLoops counts the Loops of the process with RawWaits (and
// RawWaitsWhile).
var rawLoops atomic.Int32

// ctl adds (EPOLL_CTL_ADD) or removes fd, for reading, edge-triggered.
func ctl(epfd, op, fd int) error { return ctlEvents(epfd, op, fd, 0) }

// ctlEvents is ctl, watching for more than reading (EPOLLOUT).
func ctlEvents(epfd, op, fd int, more uint32) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | -syscall.EPOLLET | more, Fd: int32(fd)}
	_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	if e != 0 {
		return os.NewSyscallError("epoll_ctl", e)
	}
	return nil
}

// Watch adds fd: h.Ready is called from Wait when fd becomes readable
// (edge-triggered; see the package documentation). A listening socket's
// new connection wakes every Loop watching it, and Accept gives it to one
// (syscall.EAGAIN to the others): to wake one Loop per connection, have
// one Loop watch the listener.
func (l *Loop) Watch(fd int, h Handler) error {
	if err := ctl(l.epd, syscall.EPOLL_CTL_ADD, fd); err != nil {
		return err
	}
	for fd >= len(l.h) {
		l.h = append(l.h, nil)
	}
	l.h[fd] = h
	return nil
}

// Lend registers h as fd's Handler without watching fd: Arm and Disarm,
// from any goroutine, then start and stop the watching. Loops that pass
// one descriptor between them (a listener that goes to whichever loop is
// free) so pass it with one epoll_ctl each and no goroutine woken: the
// Loop that gets it is woken only when there is something to take. Lend
// belongs to the Loop's goroutine, or comes before it starts.
func (l *Loop) Lend(fd int, h Handler) {
	for fd >= len(l.h) {
		l.h = append(l.h, nil)
	}
	l.h[fd] = h
}

// Arm watches a descriptor given to Lend; a Loop's own Wait reports what
// is already there (epoll does, for a descriptor added ready).
func (l *Loop) Arm(fd int) error { return ctl(l.epd, syscall.EPOLL_CTL_ADD, fd) }

// Disarm stops watching a descriptor given to Lend, keeping its Handler.
func (l *Loop) Disarm(fd int) error { return ctl(l.epd, syscall.EPOLL_CTL_DEL, fd) }

// WatchWrites has a watched fd's Handler called also when fd becomes
// writable (on), or no longer (off): for a socket whose answer waits
// for room. epoll reports a descriptor that is writable already at once.
func (l *Loop) WatchWrites(fd int, on bool) error {
	var more uint32
	if on {
		more = syscall.EPOLLOUT
	}
	return ctlEvents(l.epd, syscall.EPOLL_CTL_MOD, fd, more)
}

// Unwatch removes fd. Closing fd removes it too (when it was its only
// descriptor), so a handler closing its connection need not call Unwatch;
// one passing the socket on (dup) must.
func (l *Loop) Unwatch(fd int) error {
	if fd < len(l.h) {
		l.h[fd] = nil
	}
	return ctl(l.epd, syscall.EPOLL_CTL_DEL, fd)
}

// HungUp reports, to the Handler being called, whether its peer has shut
// down its side or the descriptor has failed (along with what is left to
// read): a Handler that learns from a short read that it has read all
// there is must still read once more to see the end.
func (l *Loop) HungUp() bool {
	return l.cur&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0
}

// Forget drops fd's handler without a system call: for a descriptor about
// to be closed.
func (l *Loop) Forget(fd int) {
	if fd < len(l.h) {
		l.h[fd] = nil
	}
}

// How a Loop waits. Without RawWaits, it parks its goroutine in the
// runtime's poller, where an epoll set holding its own is registered
// (a second epoll descriptor, so that taking the first out costs one raw
// epoll_ctl, never a close): a wait then costs two epoll_waits (the poller's, then the
// Loop's own) and the scheduler's park and wake-up. With RawWaits, it
// waits in one of three ways, chosen by how soon its events come after
// one another:
//
//   - Active (events within activeGap of each other: a client that is
//     answered asks again within 20-100 us, the original dc_test, Apache
//     under load): raw epoll_pwait2 calls, keeping its goroutine's P. A
//     raw wait costs neither the scheduler's parking and waking nor the
//     poller's second epoll_wait (the original distcache needs four
//     system calls per request of a persistent client, poll, read, poll,
//     write; a Loop three). Nothing else runs on that P meanwhile, so the
//     Loop has a timerfd tick every tick, at which it yields the P (trip:
//     through the runtime's poller too) to the goroutines and timers
//     waiting for it when every P is held by a Loop waiting raw
//     (otherwise an idle P takes them, and a yield would only wake that
//     P's thread to take the Loop's goroutine instead). A tick that finds
//     no other event since the previous one makes the Loop
//   - slow: raw waits as well, for events that come one at a time but
//     often (one Apache child's lookups, one a handshake): each wakes the
//     Loop's own thread, which answers it at once. Its tick is the
//     runtime's: a goroutine that has held its P for 10 ms without a
//     reschedule is preempted by the monitor thread with a signal, which
//     ends the raw wait (EINTR) every 10-20 ms, and the Loop yields
//     then anyway. So the timerfd is set to slowTimer only, as a bound
//     for a process without those signals (GODEBUG=asyncpreemptoff=1),
//     and a tick, of either, counts once per slowTick. A timerfd tick
//     every slowTick woke the Loop's thread 100 times a second on top of
//     the monitor's 100 and the preemptions' 50, 0.2 more wake-ups per
//     request 2 ms apart. An event within activeGap of the previous one
//     makes the Loop active again; a tick that finds nothing since the
//     previous one makes it
//   - parked, in the runtime's poller as without RawWaits, without a P
//     or a tick: an idle dc_server wakes for nothing. An event makes it
//     active or slow again when it comes within activeGap or slowTick of
//     the last one, and leaves it parked otherwise (a lookup every 20 ms
//     costs the same parked, without a tick to arm and disarm for each).
//     Its epoll descriptor is in the poller only while it parks: there
//     every event of a Loop waiting raw would also wake a thread waiting
//     in the poller, for nothing.
//
// A Loop that waited in an ordinary system call once idle, instead of
// parking, kept the runtime's monitor thread (sysmon) awake: the
// goroutine, never rescheduled, was found in a system call on the same
// scheduling tick after 10 ms, its P taken back, and the monitor went
// back to polling every 20 us, about 60 wake-ups each time: 6 wake-ups
// per request 2 ms apart and 73 per request 20 ms apart, against 1.5 for
// the original distcache. Waiting raw, the goroutine is preempted by a
// signal (EINTR) now and then instead, and yields.
//
// The tick bounds every raw wait without a timeout of its own: a timer
// set and cancelled at each wait, shorter than the kernel's own tick,
// costs more than the system call (4 us a wait in a virtual machine,
// where programming the timer leaves the guest).
const (
	tick      = time.Millisecond
	slowTick  = 10 * time.Millisecond
	slowTimer = 5 * slowTick
	activeGap = 250 * time.Microsecond
)

// active counts the Loops of the process whose tick is armed (active or
// slow: holding their P in raw waits); armed counts the times a Loop
// became active; parks the times a Loop with RawWaits parked.
var (
	active atomic.Int32
	armed  atomic.Int64
	parks  atomic.Int64
)

// timerTicks counts the expiries of the Loops' timerfds that woke them
// (the preemptions that serve as slow Loops' ticks are not among them).
var timerTicks atomic.Int64

// yields counts the ticks at which a Loop gave its P away (every P held
// by a Loop waiting raw: GOMAXPROCS lowered after Loops began to wait
// raw, as the runtime does when the process's CPU limit shrinks, or the
// last P's Loop of RawWaitsWhile).
var yields atomic.Int64

// setPeriod arms the tick with period p (tick, slowTimer), or disarms it
// (0: the Loop parks), and keeps the counts.
func (l *Loop) setPeriod(p time.Duration) {
	l.busy = false
	if p == l.period {
		return
	}
	var its unix.ItimerSpec
	if p > 0 {
		its.Interval = unix.NsecToTimespec(int64(p))
		its.Value = its.Interval
	}
	// Raw, as every system call on the way between parked and raw
	// waits: an ordinary one wakes the runtime's monitor thread from its
	// sleep when every P was idle, and it then polls every 20 us for a
	// while (about 60 wake-ups).
	if _, _, e := syscall.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(l.tfd), 0, uintptr(unsafe.Pointer(&its)), 0, 0, 0); e != 0 {
		return
	}
	was := l.period
	l.period = p
	if p == slowTimer {
		l.slowAt = mono()
	}
	switch {
	case was == 0:
		active.Add(1)
	case p == 0:
		active.Add(-1)
	}
	if p == tick {
		armed.Add(1)
	}
	if p > 0 && l.nested {
		// Out of the poller's reach while waiting raw (each event
		// would also wake a thread waiting there).
		ctl(l.epfd, syscall.EPOLL_CTL_DEL, l.epd)
		l.nested = false
	}
}

// YieldBeforeWait has the Loop's next raw wait yield the CPU first, once,
// when the Loop holds the process's only P (RawWaitsWhile on one P: a
// process pinned to one CPU, a machine or container with one): for the
// Loop's goroutine after it has closed a connection. A client opening a
// connection per request that runs on the same CPU (it has its answer,
// so it is runnable) then closes its end and opens the next connection
// before the Loop looks, and the Loop finds both in one wait instead of
// sleeping and being woken for each. On more Ps the client most likely
// runs elsewhere, and a yield would be a system call for nothing.
// A kept connection's waits do not yield: there the client's next
// request wakes the Loop either way (a yield at every wait cost the
// persistent load 5-10 %). The flag waits for the next raw wait: a
// parked wait (the runtime's poller) or a Poll leaves it. Measured in
// doc/PERFORMANCE.md ("A connection per request on one CPU").
func (l *Loop) YieldBeforeWait() { l.yield = l.quiet != nil } // quiet: the only P's Loop

// testHookYield, set by tests, is called at each yield of YieldBeforeWait.
var testHookYield func()

// epoch is the origin of mono.
var epoch = time.Now()

// mono is a monotonic clock in nanoseconds.
func mono() int64 { return int64(time.Since(epoch)) }

// Wait waits until a watched descriptor is ready, Wake is called or the
// deadline passes (zero: none), and calls the Handlers of the ready
// descriptors. It returns nil after calling Handlers, ErrWake when woken,
// os.ErrDeadlineExceeded at the deadline: once the deadline has passed,
// always (a raw wait calls the Handlers of what is ready first; a parked
// one leaves them, and a Wake, to the next Wait), so that a caller runs
// its timers also while some descriptor is ready at every Wait. A caller
// must so move its deadline on once it has passed: a parked Loop waiting
// for a passed deadline again and again never looks at its descriptors.
func (l *Loop) Wait(deadline time.Time) error {
	if l.quiet != nil && l.period == 0 {
		l.holdLastP(l.quiet())
	}
	for {
		if !l.raw || l.period == 0 {
			// Without raw waits, parked, or RawWaitsWhile no longer
			// quiet.
			return l.park(deadline)
		}
		d := time.Duration(-1) // no timeout
		if !deadline.IsZero() {
			if d = time.Until(deadline); d <= 0 {
				if err := l.Poll(); err != nil {
					return err
				}
				return os.ErrDeadlineExceeded // also after Handlers
			}
		}
		if d >= l.period {
			d = -1 // the tick ends it soon enough
		}
		if l.yield {
			l.yield = false
			if testHookYield != nil {
				testHookYield()
			}
			syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
		}
		r, e := l.epollWait(d, true)
		switch {
		case e == syscall.EINTR:
			// A signal, most often the runtime's preemption (a raw
			// wait is no place for it): yield, first (a call that is
			// not inlined would take the preemption before). Slow, it is
			// the tick (see the notes above Wait).
			runtime.Gosched()
			if l.period == slowTimer && l.tickCounts() {
				l.ticked(false)
			}
			continue
		case e != 0:
			return os.NewSyscallError("epoll_pwait", e)
		case r == 0:
			continue // the deadline: the loop sees it passed
		}
		l.n = r
		if called, err := l.dispatch(); called {
			return err
		}
	}
}

// holdLastP lets the Loop of RawWaitsWhile wait raw (on), as RawWaits
// does, or has it park.
func (l *Loop) holdLastP(on bool) {
	if on == l.raw {
		return
	}
	l.raw = on
	if !on {
		l.setPeriod(0)
	}
}

// park is Wait in the runtime's poller.
func (l *Loop) park(deadline time.Time) error {
	if l.ep == nil {
		fd, _, e := syscall.RawSyscall(syscall.SYS_EPOLL_CREATE1, syscall.EPOLL_CLOEXEC, 0, 0)
		if e != 0 {
			// No descriptor left for it (the process at its limit):
			// this wait is an ordinary system call's, which gives the P
			// up too (when the runtime's monitor takes it back).
			return l.waitSyscall(deadline)
		}
		// Non-blocking, so that os.NewFile puts it in the poller.
		if _, err := Nonblock(int(fd)); err != nil {
			Close(int(fd))
			return l.waitSyscall(deadline)
		}
		l.ep, l.epfd = os.NewFile(fd, "epoll"), int(fd)
		rc, err := l.ep.SyscallConn()
		if err != nil {
			return err
		}
		l.rc, l.waitFn = rc, l.pollFn
	}
	if !l.nested {
		if ctl(l.epfd, syscall.EPOLL_CTL_ADD, l.epd) != nil {
			return l.waitSyscall(deadline)
		}
		l.nested = true
		if l.tfd >= 0 {
			parks.Add(1)
		}
	}
	if !deadline.Equal(l.dl) {
		l.dl = deadline
		l.ep.SetReadDeadline(deadline)
	}
	l.n = 0
	if err := l.rc.Read(l.waitFn); err != nil {
		return err
	}
	_, err := l.dispatch()
	if l.period > 0 {
		// From here on the Loop waits raw, holding its P. The thread
		// now running it is most likely the one that was waiting in
		// the runtime's poller for the whole process, and it will not
		// go back there: the scheduler has a thread wait in the poller
		// only when that thread has nothing else to do, and idle ones
		// sleep. Every goroutine parked in the poller (another Loop's,
		// a connection served by a goroutine) would then wait for the
		// monitor thread's poll, every 10 ms, or for this Loop to park
		// again: a GET on the other Loop of dc_server with two kept
		// connections took 5-10 ms, and the monitor went back to
		// polling every 20 us. A yield puts this goroutine in the run
		// queue and wakes an idle thread for the idle P: of the two,
		// the one that does not run the Loop finds nothing to do and
		// goes to wait in the poller.
		runtime.Gosched()
	}
	return err
}

// waitSyscall is park without the runtime's poller: an epoll wait in an
// ordinary system call, until the deadline (zero: none).
func (l *Loop) waitSyscall(deadline time.Time) error {
	d := time.Duration(-1)
	if !deadline.IsZero() {
		d = max(time.Until(deadline), 0)
	}
	l.n = 0
	r, e := l.epollWait(d, false)
	switch {
	case e == syscall.EINTR:
		return nil // the caller waits again
	case e != 0:
		return os.NewSyscallError("epoll_pwait", e)
	case r == 0 && !deadline.IsZero() && !time.Now().Before(deadline):
		return os.ErrDeadlineExceeded
	}
	l.n = r
	_, err := l.dispatch()
	return err
}

// pollFn collects the ready events of epd without waiting, for park's
// RawConn Read (of ep); false when there are none (the netpoller then
// parks the goroutine until there are).
func (l *Loop) pollFn(uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(l.epd), uintptr(unsafe.Pointer(&l.ev[0])), uintptr(len(l.ev)), 0, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return true // with no events: Wait returns, the caller retries
		}
		l.n = int(r)
		return r > 0
	}
}

// epollWait waits up to d (negative: without end) for events into l.ev,
// in a raw system call (keeping the P) or an ordinary one.
func (l *Loop) epollWait(d time.Duration, raw bool) (int, syscall.Errno) {
	call := syscall.Syscall6
	if raw {
		call = syscall.RawSyscall6
	}
	ev := uintptr(unsafe.Pointer(&l.ev[0]))
	if !l.noWait2 {
		var ts *unix.Timespec
		if d >= 0 {
			t := unix.NsecToTimespec(int64(d))
			ts = &t
		}
		r, _, e := call(unix.SYS_EPOLL_PWAIT2, uintptr(l.epd), ev, uintptr(len(l.ev)), uintptr(unsafe.Pointer(ts)), 0, 0)
		if e != syscall.ENOSYS {
			return int(r), e
		}
		l.noWait2 = true
	}
	ms := -1 // epoll_pwait counts milliseconds
	if d >= 0 {
		ms = int((d + time.Millisecond - 1) / time.Millisecond)
	}
	r, _, e := call(syscall.SYS_EPOLL_PWAIT, uintptr(l.epd), ev, uintptr(len(l.ev)), uintptr(ms), 0, 0)
	return int(r), e
}

// Poll is Wait without the waiting: it calls the Handlers of the
// descriptors ready now.
func (l *Loop) Poll() error {
	l.n = 0
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(l.epd), uintptr(unsafe.Pointer(&l.ev[0])), uintptr(len(l.ev)), 0, 0, 0)
	if e == 0 {
		l.n = int(r)
	}
	_, err := l.dispatch()
	return err
}

// dispatch calls the Handlers of the l.n events in l.ev, and reports
// whether it called any or was woken (ErrWake); it keeps the tick.
func (l *Loop) dispatch() (called bool, err error) {
	ticked, answers := false, false
	for i := 0; i < l.n; i++ {
		fd := int(l.ev[i].Fd)
		switch {
		case fd == l.tfd:
			var b [8]byte
			syscall.RawSyscall(syscall.SYS_READ, uintptr(l.tfd), uintptr(unsafe.Pointer(&b[0])), 8)
			ticked = true
			timerTicks.Add(1)
			continue
		case fd == l.efd:
			var b [8]byte
			syscall.RawSyscall(syscall.SYS_READ, uintptr(l.efd), uintptr(unsafe.Pointer(&b[0])), 8)
			err = ErrWake
		case fd < len(l.h) && l.h[fd] != nil:
			l.cur = l.ev[i].Events
			l.h[fd].Ready()
			l.cur = 0
			if l.passive {
				l.passive = false
				answers = true
				continue
			}
		}
		called = true
	}
	l.n = 0
	switch {
	case !l.raw:
	case ticked && l.tickCounts():
		l.ticked(called)
	case called && l.period != tick:
		// Slow or parked: how long since the last events says what next.
		now := mono()
		gap := time.Duration(now - l.lastEv)
		switch {
		case gap < activeGap:
			l.setPeriod(tick)
		case l.period == 0 && gap < slowTick:
			l.setPeriod(slowTimer)
		default:
			l.busy = true
		}
		l.lastEv = now
	case called, answers:
		l.busy = true
	}
	return called || answers, err
}

// tickCounts reports whether a tick is taken: always but in the slow
// state, where the timerfd's and the preemptions' count once per slowTick
// (a timerfd tick right after a preemption would otherwise find nothing
// since and park a Loop whose events come 2 ms apart).
func (l *Loop) tickCounts() bool {
	if l.period != slowTimer {
		return true
	}
	now := mono()
	if time.Duration(now-l.slowAt) < slowTick {
		return false
	}
	l.slowAt = now
	return true
}

// ticked is a tick taken, with Handlers called (called) since the
// previous one or not: the Loop goes from active to slow, then parked,
// each when a tick finds nothing since the previous one, and gives its P
// away when every P is held by a Loop waiting raw.
func (l *Loop) ticked(called bool) {
	if called || l.busy {
		l.busy = false
	} else if l.period == tick {
		l.setPeriod(slowTimer)
	} else {
		l.setPeriod(0)
	}
	if int(active.Load()) >= runtime.GOMAXPROCS(0) {
		yields.Add(1)
		l.trip()
	}
	if l.quiet != nil && l.period > 0 {
		l.holdLastP(l.quiet())
	}
}

// Passive tells the Loop, from the Handler it is calling, that this
// event answers something the Loop did (dc_client's upstream answer to
// the request its loop wrote): it keeps the Loop as busy as it is, but
// does not count as an event that came close after the last, so a
// request and its answer do not make a Loop waiting for requests
// milliseconds apart active (a tick every millisecond), only the
// requests' own pace does.
func (l *Loop) Passive() { l.passive = true }

// trip gives the P to what waits for it, when every P is held by an active
// Loop: the goroutines and timers that are due, and the runtime's poller,
// which the scheduler polls only when it has nothing else to run (a
// Gosched alone would run this goroutine again first). The goroutine
// parks reading an eventfd of its own in the poller, made readable just
// before, so it is woken by the scheduler's next poll, right after the
// goroutines that were waiting. A trip costs three system calls.
func (l *Loop) trip() {
	if l.tf == nil {
		efd, _, e := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
		if e != 0 {
			runtime.Gosched()
			return
		}
		f := os.NewFile(efd, "evloop-trip")
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			runtime.Gosched()
			return
		}
		l.tf, l.trc = f, rc
		l.tripFn = func(fd uintptr) bool {
			if !l.tripping {
				// After the poller's reset of the descriptor's
				// readiness (RawConn.Read), so its next poll sees this.
				l.tripping = true
				one := uint64(1)
				syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&one)), 8)
				return false
			}
			var b [8]byte
			_, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), 8)
			return e != syscall.EAGAIN
		}
	}
	l.tripping = false
	if l.trc.Read(l.tripFn) != nil {
		runtime.Gosched()
	}
}

// Wake makes the current or next Wait return ErrWake (after the Handlers
// of the descriptors ready by then). It may be called from any goroutine,
// also after Close.
func (l *Loop) Wake() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	one := uint64(1)
	syscall.RawSyscall(syscall.SYS_WRITE, uintptr(l.efd), uintptr(unsafe.Pointer(&one)), 8)
}

// Close releases the loop; the descriptors it watched are the caller's.
func (l *Loop) Close() error {
	l.mu.Lock()
	l.closed = true
	syscall.Close(l.efd)
	l.mu.Unlock()
	if l.tfd >= 0 {
		l.setPeriod(0)
		syscall.Close(l.tfd)
		rawLoops.Add(-1)
		l.tfd, l.raw, l.quiet = -1, false, nil
	}
	if l.tf != nil {
		l.tf.Close()
	}
	if l.ep != nil {
		l.ep.Close()
	}
	return syscall.Close(l.epd)
}

// Accept accepts a connection on the listening descriptor lfd,
// non-blocking and close-on-exec; syscall.EAGAIN when there is none.
func Accept(lfd int) (int, error) {
	for {
		fd, _, e := syscall.RawSyscall6(syscall.SYS_ACCEPT4, uintptr(lfd), 0, 0, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0, 0)
		switch e {
		case 0:
			return int(fd), nil
		case syscall.EINTR, syscall.ECONNABORTED:
			continue
		}
		return -1, e
	}
}

// Close closes a descriptor the loop's owner accepted.
func Close(fd int) {
	syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
}

// ListenerFD returns a duplicate of ln's descriptor (close-on-exec) for
// Watch and Accept; the caller closes it. Closing ln does not stop the
// duplicate from accepting. The socket must stay non-blocking, as the net
// package keeps it (a blocking accept4 in a raw system call would hold
// its P until a connection comes): ListenerFD makes it non-blocking again
// if it is not (Nonblock). Mind that the Fd of a File from the net
// package's File methods (os.StartProcess calls it for ExtraFiles) makes
// it blocking, for every descriptor of it: an os.NewFile of a ListenerFD
// does not.
func ListenerFD(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, errors.New("evloop: the listener has no descriptor")
	}
	return FD(sc)
}

// LeavePoller takes ln's own descriptor out of the runtime's poller, for
// a listener whose connections Loops accept on a duplicate (ListenerFD).
// The net package registered it there, edge-triggered, and every
// connection then woke a thread waiting in the poller for nothing: twice
// on a unix socket (the connection queued, then the room its accept
// frees), while the Loop accepting it waits raw or parks. The runtime's
// epoll set is found in /proc/self/fdinfo, as the one watching that
// descriptor's number and file; without /proc, or when none is found,
// nothing changes and LeavePoller reports false. ln's Accept must not be
// called afterwards (it would wait without end); Close, Addr, File and
// SyscallConn work as before.
func LeavePoller(ln net.Listener) bool {
	done := false
	withPoller(ln, func(fd, epfd int) {
		var ev syscall.EpollEvent
		_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), syscall.EPOLL_CTL_DEL, uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
		done = e == 0
	})
	return done
}

// InPoller reports whether ln's own descriptor is in an epoll set of the
// process (the runtime's poller, until LeavePoller), as /proc/self/fdinfo
// shows; false without /proc.
func InPoller(ln net.Listener) bool {
	in := false
	withPoller(ln, func(int, int) { in = true })
	return in
}

// withPoller calls f with ln's own descriptor and the epoll descriptor
// that watches it (pollerOf), inside the descriptor's Control so that it
// cannot be closed meanwhile; f is not called when ln has no descriptor
// or no epoll set watches it.
func withPoller(ln net.Listener, f func(fd, epfd int)) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		var st syscall.Stat_t
		if syscall.Fstat(int(fd), &st) != nil {
			return
		}
		if epfd := pollerOf(int(fd), st.Ino); epfd >= 0 {
			f(int(fd), epfd)
		}
	})
}

// pollerOf is the epoll descriptor of the process that watches fd, whose
// file has inode ino (from /proc/self/fdinfo), or -1.
func pollerOf(fd int, ino uint64) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	want := fmt.Sprintf("tfd: %8d ", fd)
	inoField := fmt.Sprintf(" ino:%x ", ino)
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || l != "anon_inode:[eventpoll]" {
			continue
		}
		b, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, want) && strings.Contains(line+" ", inoField) {
				n, err := strconv.Atoi(e.Name())
				if err == nil {
					return n
				}
			}
		}
	}
	return -1
}

// FD returns a duplicate of the descriptor of c (a socket of the net
// package), close-on-exec and non-blocking (Nonblock), for a Loop; the
// caller closes it.
func FD(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(f uintptr) {
		r, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, f, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = os.NewSyscallError("fcntl", e)
			return
		}
		fd = int(r)
	}); err != nil {
		return -1, err
	}
	if derr == nil {
		if _, derr = Nonblock(fd); derr != nil {
			Close(fd)
			fd = -1
		}
	}
	return fd, derr
}

// Nonblock makes the open file of fd non-blocking (for every descriptor
// of it) if it is not, and reports whether it was not.
func Nonblock(fd int) (changed bool, err error) {
	fl, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if e != 0 {
		return false, os.NewSyscallError("fcntl", e)
	}
	if fl&syscall.O_NONBLOCK != 0 {
		return false, nil
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFL, fl|syscall.O_NONBLOCK); e != 0 {
		return false, os.NewSyscallError("fcntl", e)
	}
	return true, nil
}

// TCPOptions gives a TCP socket the options net's Accept sets on each
// connection: answers go out at once, not after the acknowledgement of
// the previous segment (Nagle), and keep-alive probes (15 s idle, every
// 15 s, 9 times) notice a peer that vanished. Linux copies them from a
// listening socket to every connection accepted from it. A failure
// changes nothing that matters to serving.
func TCPOptions(fd int) {
	setsockopt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	setsockopt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1)
	setsockopt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, 15)
	setsockopt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, 15)
	setsockopt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, 9)
}

// DeferAccept has a TCP listener queue a connection only once its first
// bytes have come (TCP_DEFER_ACCEPT), for a protocol whose client speaks
// first, as distcache's does: a connection opened for one request then
// wakes its server once, finding the request there, instead of once for
// the connection and again for the request (on one CPU shared with its
// clients, the original dc_test's TCP load, 8-11 % of the server's CPU per
// connection). A client that sends nothing is queued after about a second
// (the kernel resends its SYN-ACK, whose acknowledgement queues it), or
// when it closes. A failure changes nothing that matters to serving.
func DeferAccept(fd int) {
	setsockopt(fd, syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, 1)
}

// setsockopt sets an integer socket option with a raw system call.
func setsockopt(fd, level, opt, v int) {
	v32 := int32(v)
	syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&v32)), 4, 0)
}

// PeerAddr is the address of fd's peer (a *net.TCPAddr, or a *net.UnixAddr
// with an empty name for an unnamed unix client); nil if unknown.
func PeerAddr(fd int) net.Addr {
	sa, err := syscall.Getpeername(fd)
	if err != nil {
		return nil
	}
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	case *syscall.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	return nil
}

// WatchClosed returns once stopped is closed (the loops have stopped
// accepting on their duplicate of ln, ListenerFD), looking at ln once a
// second meanwhile: when anyone has closed ln, which leaves the duplicate
// open and tells no one, it calls closed (which has the loops stop) and
// goes on waiting; when something has made the socket blocking, it makes
// it non-blocking again and calls madeBlocking (a raw accept4 would wait
// holding its P).
func WatchClosed(ln net.Listener, stopped <-chan struct{}, closed, madeBlocking func()) {
	sc, ok := ln.(syscall.Conn)
	var rc syscall.RawConn
	var err error
	if ok {
		rc, err = sc.SyscallConn()
	}
	if !ok || err != nil {
		<-stopped
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stopped:
			return
		case <-tick.C:
			var changed bool
			if rc.Control(func(fd uintptr) { changed, _ = Nonblock(int(fd)) }) != nil {
				closed()
				<-stopped
				return
			}
			if changed {
				madeBlocking()
			}
		}
	}
}
