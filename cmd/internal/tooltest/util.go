// SPDX-License-Identifier: Apache-2.0

package tooltest

import "fmt"

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
func sprint(args ...any) string                 { return fmt.Sprint(args...) }

type stopPanic struct{}

// panicStop unwinds a background check after a failure; the background
// loop recovers it.
func panicStop() { panic(stopPanic{}) }
