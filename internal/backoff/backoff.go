// Package backoff computes the waits between reconnects and retries:
// exponential, capped, and jittered so that many clients that failed
// together do not come back together.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Delay returns the wait before attempt n (from 0) of a series that
// starts at least and doubles up to most: a random duration between half
// and all of min(most, least·2^n). It returns 0 when most is not positive.
func Delay(n int, least, most time.Duration) time.Duration {
	d := most
	if d <= 0 {
		return 0
	}
	if n >= 0 && n < 32 {
		if e := least << n; e > 0 && e < d {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
