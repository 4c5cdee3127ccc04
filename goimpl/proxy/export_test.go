// SPDX-License-Identifier: Apache-2.0

package proxy

import "time"

// SetClientWriteTimeout changes how long a client may leave its answer
// unread, until the returned function restores it.
func SetClientWriteTimeout(d time.Duration) (restore func()) {
	old := clientWriteTimeout
	clientWriteTimeout = d
	return func() { clientWriteTimeout = old }
}
