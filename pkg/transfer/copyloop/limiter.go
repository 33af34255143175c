package copyloop

import (
	"context"
	"math"
	"math/bits"
	"sync"
	"time"
)

// limiterBurst is how far ahead of its rate an idle limiter lets bytes go:
// short enough that a limit holds over any second, long enough that a
// chunk (about 1/16 s of the rate) passes without waiting.
const limiterBurst = 100 * time.Millisecond

// minLimitedChunk is the smallest chunk a limited copy moves at a time.
const minLimitedChunk = 4 << 10

// Limiter holds copies to a rate in bytes per second. One Limiter may be
// shared by any number of copies (the agent's maxBandwidth), and a copy may
// be held by several (that and its own --bwlimit). The nil *Limiter is
// unlimited.
//
// It is a token bucket kept as the time at which everything reserved so far
// will have been paid for at the rate: a reservation moves that time on by
// its cost and waits until the time is no more than limiterBurst ahead of
// now. Waiters are served in the order they reserved.
type Limiter struct {
	rate  int64 // bytes per second, > 0
	clock clock

	mu  sync.Mutex
	tat time.Time // when every reservation so far has been paid for
}

// NewLimiter returns a limiter of bytesPerSecond, or nil (unlimited) for 0 or
// less.
func NewLimiter(bytesPerSecond int64) *Limiter {
	return newLimiter(bytesPerSecond, realClock{})
}

func newLimiter(bytesPerSecond int64, c clock) *Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	return &Limiter{rate: bytesPerSecond, clock: c}
}

// Rate is the limit in bytes per second; 0 for nil (unlimited).
func (l *Limiter) Rate() int64 {
	if l == nil {
		return 0
	}
	return l.rate
}

// Wait blocks until n more bytes may move, or until ctx is done (then it
// returns ctx.Err() and gives the bytes back).
func (l *Limiter) Wait(ctx context.Context, n int) error {
	return waitAll(ctx, []*Limiter{l}, n)
}

// waitAll waits until every limiter lets n bytes through: it reserves them
// from each and waits for the longest.
func waitAll(ctx context.Context, limiters []*Limiter, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var (
		longest time.Duration
		by      *Limiter
	)
	for _, l := range limiters {
		if l == nil || n <= 0 {
			continue
		}
		if d := l.reserve(l.clock.Now(), n); by == nil || d > longest {
			longest, by = d, l
		}
	}
	if longest <= 0 {
		return nil
	}
	if err := by.clock.Sleep(ctx, longest); err != nil {
		for _, l := range limiters {
			if l != nil {
				l.unreserve(n)
			}
		}
		return err
	}
	return nil
}

// reserve takes n bytes at time now and says how long to wait before moving
// them.
func (l *Limiter) reserve(now time.Time, n int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tat.Before(now) {
		l.tat = now // an idle limiter saves up no more than limiterBurst
	}
	l.tat = l.tat.Add(l.cost(n))
	return max(0, l.tat.Sub(now)-limiterBurst)
}

// unreserve gives back n bytes whose wait was cut short.
func (l *Limiter) unreserve(n int) {
	l.mu.Lock()
	l.tat = l.tat.Add(-l.cost(n))
	l.mu.Unlock()
}

// cost is the time n bytes take at the rate, rounded down.
func (l *Limiter) cost(n int) time.Duration {
	hi, lo := bits.Mul64(uint64(n), uint64(time.Second))
	if hi >= uint64(l.rate) {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, uint64(l.rate))
	return time.Duration(min(q, math.MaxInt64))
}

// chunk is the largest chunk a copy held by l should move at a time: about
// 1/16 s of the rate, so that it waits often and briefly.
func (l *Limiter) chunk() int {
	if l == nil {
		return math.MaxInt
	}
	return int(min(max(l.rate/16, minLimitedChunk), math.MaxInt))
}

type clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
