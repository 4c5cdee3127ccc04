// SPDX-License-Identifier: Apache-2.0

package accept

import "testing"

func TestRateLog(t *testing.T) {
	r := &RateLog{Burst: 3}
	for i := 0; i < 10; i++ {
		r.Printf("line %d", i)
	}
	if r.n != 3 || r.suppressed != 7 {
		t.Errorf("printed %d, suppressed %d; want 3 and 7", r.n, r.suppressed)
	}
}
