package copyloop

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"
)

// fakeClock's Sleep moves its time on instead of waiting.
type fakeClock struct {
	mu       sync.Mutex
	now      time.Time
	maxSleep time.Duration
	block    bool // Sleep waits for the context instead
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if c.block {
		<-ctx.Done()
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.maxSleep = max(c.maxSleep, d)
	return nil
}

func TestLimiterLetsTheRateThroughAWindow(t *testing.T) {
	const (
		rate  = 1 << 20
		chunk = 4096
	)
	cost := time.Duration(chunk) * time.Second / rate // 3.90625 ms
	clk := &fakeClock{now: time.Unix(0, 0)}
	l := newLimiter(rate, clk)
	end := clk.now.Add(10 * time.Second)
	var passed int64
	for {
		if err := l.Wait(context.Background(), chunk); err != nil {
			t.Fatal(err)
		}
		if clk.Now().After(end) {
			break
		}
		passed += chunk
	}
	// Chunk k (from 1) goes at k×cost − burst, so by the end of the window
	// (10 s + burst) / cost chunks have gone: the rate, plus the burst once.
	want := int64((10*time.Second+limiterBurst)/cost) * chunk
	if passed != want {
		t.Fatalf("%d bytes in 10 s at %d B/s, want %d", passed, rate, want)
	}
}

func TestLimiterIdleSavesUpOnlyTheBurst(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	l := newLimiter(1<<20, clk)
	if err := l.Wait(context.Background(), 1<<20); err != nil {
		t.Fatal(err)
	}
	clk.now = clk.now.Add(time.Hour)
	free := 0
	for l.reserve(clk.Now(), 4096) == 0 {
		free++
	}
	// 100 ms at 1 MiB/s is 25.6 chunks of 4 KiB.
	if free != 25 {
		t.Fatalf("%d chunks went without waiting after an idle hour, want 25 (the burst)", free)
	}
}

func TestLimiterWaitCancelled(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0), block: true}
	l := newLimiter(1000, clk)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Wait(ctx, 1<<20) }() // 17 minutes at 1000 B/s
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait: %v, want context.Canceled", err)
	}
	// The bytes were given back: the limiter is idle again.
	if d := l.reserve(clk.Now(), 100); d != 0 {
		t.Fatalf("after a cancelled wait the next 100 bytes wait %v, want 0", d)
	}

	// With the real clock: a done context ends the wait.
	real := NewLimiter(1)
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := real.Wait(ctx, 1<<20); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v, want context.DeadlineExceeded", err)
	}
}

func TestNilLimiterIsUnlimited(t *testing.T) {
	for _, r := range []int64{0, -1} {
		if l := NewLimiter(r); l != nil {
			t.Fatalf("NewLimiter(%d) = %v, want nil", r, l)
		}
	}
	var l *Limiter
	if err := l.Wait(context.Background(), math.MaxInt); err != nil || l.Rate() != 0 {
		t.Fatalf("nil limiter: %v, rate %d", err, l.Rate())
	}
	if l.chunk() != math.MaxInt {
		t.Fatalf("nil limiter limits the chunk to %d", l.chunk())
	}
	if c := newLimiter(1, realClock{}).cost(math.MaxInt); c != math.MaxInt64 {
		t.Fatalf("cost of MaxInt bytes at 1 B/s = %v, want the longest duration", c)
	}
}
