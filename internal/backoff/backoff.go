// Package backoff computes the waits between reconnects and retries:
// exponential, capped, and jittered so that many clients that failed
// together do not come back together.
package backoff

import (
	"context"
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

// Wait waits for d and reports true, or reports false as soon as ctx
// ends. A d of zero or less does not wait.
func Wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
