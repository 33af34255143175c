package ha

import (
	"math/rand/v2"
	"time"
)

// backoff produces capped, jittered exponential delays so that an instance
// that cannot reach the others waits quietly instead of spinning.
type backoff struct {
	min, max time.Duration
	next     time.Duration
}

func newBackoff(min, max time.Duration) *backoff {
	if max < min {
		max = min
	}
	return &backoff{min: min, max: max, next: min}
}

// Next returns the next delay: the current step with ±25% jitter, then doubles
// the step up to max.
func (b *backoff) Next() time.Duration {
	d := b.next
	b.next *= 2
	if b.next > b.max {
		b.next = b.max
	}
	return jitter(d, 0.25)
}

// Reset starts again from the minimum.
func (b *backoff) Reset() { b.next = b.min }

func jitter(d time.Duration, frac float64) time.Duration {
	if d <= 0 || frac <= 0 {
		return d
	}
	f := 1 + frac*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}
