// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// No panic crosses the C boundary: a panic unwinding into a C caller (an
// Apache child, a daemon) would kill the whole process. Every dce_* export
// of this package and of dc/ starts with one deferred call,
//
//	defer Rescue(&ret, fail)	// or defer RescueVoid() without a result
//
// which ends a panic, makes the export return its failure value (the same
// one the front returns when the engine is missing) and prints one line on
// stderr naming the export. Lines are limited to one a second; the ones
// left out are counted in the next.

// Rescue recovers a panic in the export that defers it; *ret becomes fail.
func Rescue[T any](ret *T, fail T) {
	if p := recover(); p != nil {
		*ret = fail
		report(p)
	}
}

// RescueVoid recovers a panic in an export without a result.
func RescueVoid() {
	if p := recover(); p != nil {
		report(p)
	}
}

var rescued struct {
	sync.Mutex
	last    time.Time
	dropped int
}

func report(p any) {
	msg := strings.Join(strings.Fields(fmt.Sprint(p)), " ")
	rescued.Lock()
	defer rescued.Unlock()
	now := time.Now()
	if !rescued.last.IsZero() && now.Sub(rescued.last) < time.Second {
		rescued.dropped++
		return
	}
	more := ""
	if rescued.dropped > 0 {
		more = fmt.Sprintf(" (and %d more since the last line)", rescued.dropped)
	}
	rescued.last, rescued.dropped = now, 0
	Warn(fmt.Sprintf("distcache: internal error in %s: %s; the call failed%s", exportName(), msg, more))
}

// stderrFD is the descriptor Warn writes to (a test's pipe in tests).
var stderrFD = 2

// Warn writes line and a newline to standard error with write(2) itself,
// for the engine's lines (an internal error, dc's probation). Not through
// os.Stderr: when a write to an os.File of descriptor 1 or 2 fails with
// EPIPE, the Go runtime ends the process with SIGPIPE, also in a program
// that ignores the signal, so an Apache child whose piped error log lost
// its reader would die of a warning. What cannot be written is dropped.
func Warn(line string) {
	b := []byte(line + "\n")
	for len(b) > 0 {
		n, err := syscall.Write(stderrFD, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		b = b[n:]
	}
}

// exportName is the C name of the export being unwound (the innermost dce_*
// frame on the stack), e.g. "NAL_ADDRESS_create".
func exportName() string {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if i := strings.LastIndex(f.Function, ".dce_"); i >= 0 {
			return f.Function[i+len(".dce_"):]
		}
		if !more {
			return "the engine"
		}
	}
}

// testHook is set only in engines built with the distcache_panictest tag
// (panictest.go): the C suite's way to make an export panic on purpose.
var testHook func()

// Save makes a C-visible reference to v (refs.go), for every export of the
// engine.
func Save(v any) unsafe.Pointer {
	if testHook != nil {
		testHook()
	}
	return saveRef(v)
}

// saveBoxed is Save for an object (home) that carries its reference's box.
func saveBoxed(b *refBox, v, home any) unsafe.Pointer {
	if testHook != nil {
		testHook()
	}
	return saveIn(b, v, home)
}

// Restore returns the value behind a reference made by Save (nil if none).
func Restore(r unsafe.Pointer) any {
	if testHook != nil {
		testHook()
	}
	return restoreRef(r)
}
