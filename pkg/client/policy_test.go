package client

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestDefaultPolicy(t *testing.T) {
	p := DefaultPolicy()
	want := Policy{
		ConnectAttempts:   2,
		ConnectDelay:      500 * ms,
		ReconnectAttempts: 4,
		ReconnectDelay:    500 * ms,
		PrimaryRetries:    0,
		PrimaryRetryDelay: 500 * ms,
		Jitter:            0.2,
		RequestTimeout:    2 * time.Second,
	}
	if p != want {
		t.Fatalf("DefaultPolicy() = %+v, want %+v", p, want)
	}
}

func noJitter() Policy {
	p := DefaultPolicy()
	p.Jitter = 0
	return p
}

func zeroRand() float64 { return 0 }

func TestPlan(t *testing.T) {
	abc := []string{"a:1", "b:2", "c:3"}
	type at = Attempt
	tests := []struct {
		name      string
		policy    func(*Policy)
		addrs     []string
		start     int
		reconnect bool
		want      []Attempt
	}{
		{
			name:  "first connect: 2 passes in order, delay only between passes",
			addrs: abc,
			want: []at{
				{"a:1", 0}, {"b:2", 0}, {"c:3", 0},
				{"a:1", 500 * ms}, {"b:2", 0}, {"c:3", 0},
			},
		},
		{
			name:   "first connect ignores start",
			addrs:  abc,
			start:  2,
			policy: func(p *Policy) { p.ConnectAttempts = 1 },
			want:   []at{{"a:1", 0}, {"b:2", 0}, {"c:3", 0}},
		},
		{
			name:   "custom connect attempts and delay",
			addrs:  []string{"a:1", "b:2"},
			policy: func(p *Policy) { p.ConnectAttempts = 3; p.ConnectDelay = 2 * time.Second },
			want: []at{
				{"a:1", 0}, {"b:2", 0},
				{"a:1", 2 * time.Second}, {"b:2", 0},
				{"a:1", 2 * time.Second}, {"b:2", 0},
			},
		},
		{
			name:  "primary retries (-fr 2 -fd 300ms), one pass",
			addrs: abc,
			policy: func(p *Policy) {
				p.ConnectAttempts = 1
				p.PrimaryRetries = 2
				p.PrimaryRetryDelay = 300 * ms
			},
			want: []at{{"a:1", 0}, {"a:1", 300 * ms}, {"a:1", 300 * ms}, {"b:2", 0}, {"c:3", 0}},
		},
		{
			name:  "primary retries repeat at the start of every pass",
			addrs: abc,
			policy: func(p *Policy) {
				p.PrimaryRetries = 1
				p.PrimaryRetryDelay = 100 * ms
				p.ConnectDelay = 700 * ms
			},
			want: []at{
				{"a:1", 0}, {"a:1", 100 * ms}, {"b:2", 0}, {"c:3", 0},
				{"a:1", 700 * ms}, {"a:1", 100 * ms}, {"b:2", 0}, {"c:3", 0},
			},
		},
		{
			name:      "reconnect from index 1 wraps, 4 passes, ReconnectDelay",
			addrs:     abc,
			start:     1,
			reconnect: true,
			policy:    func(p *Policy) { p.ReconnectDelay = 250 * ms; p.ConnectDelay = 9 * time.Second },
			want: []at{
				{"b:2", 0}, {"c:3", 0}, {"a:1", 0},
				{"b:2", 250 * ms}, {"c:3", 0}, {"a:1", 0},
				{"b:2", 250 * ms}, {"c:3", 0}, {"a:1", 0},
				{"b:2", 250 * ms}, {"c:3", 0}, {"a:1", 0},
			},
		},
		{
			name:      "reconnect from a middle index does not retry the primary",
			addrs:     abc,
			start:     2,
			reconnect: true,
			policy:    func(p *Policy) { p.ReconnectAttempts = 2; p.PrimaryRetries = 3 },
			want: []at{
				{"c:3", 0}, {"a:1", 0}, {"b:2", 0},
				{"c:3", 500 * ms}, {"a:1", 0}, {"b:2", 0},
			},
		},
		{
			name:      "reconnect from the primary retries it",
			addrs:     []string{"a:1", "b:2"},
			reconnect: true,
			policy: func(p *Policy) {
				p.ReconnectAttempts = 1
				p.PrimaryRetries = 1
				p.PrimaryRetryDelay = 50 * ms
			},
			want: []at{{"a:1", 0}, {"a:1", 50 * ms}, {"b:2", 0}},
		},
		{
			name:      "start index out of range wraps",
			addrs:     abc,
			start:     -2,
			reconnect: true,
			policy:    func(p *Policy) { p.ReconnectAttempts = 1 },
			want:      []at{{"b:2", 0}, {"c:3", 0}, {"a:1", 0}},
		},
		{
			name:   "one address, zero attempts means one pass",
			addrs:  []string{"a:1"},
			policy: func(p *Policy) { p.ConnectAttempts = 0 },
			want:   []at{{"a:1", 0}},
		},
		{
			name:  "no addresses, no plan",
			addrs: nil,
			want:  nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := noJitter()
			if tt.policy != nil {
				tt.policy(&p)
			}
			got := p.Plan(tt.addrs, tt.start, tt.reconnect, zeroRand)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Plan =\n  %v\nwant\n  %v", got, tt.want)
			}
		})
	}
}

func TestPlanJitterBounds(t *testing.T) {
	p := DefaultPolicy() // Jitter 0.2
	p.PrimaryRetries = 1
	p.PrimaryRetryDelay = 1000 * ms
	p.ConnectDelay = 500 * ms
	addrs := []string{"a:1", "b:2"}

	low := p.Plan(addrs, 0, false, func() float64 { return 0 })
	wantLow := []Attempt{{"a:1", 0}, {"a:1", 800 * ms}, {"b:2", 0}, {"a:1", 400 * ms}, {"a:1", 800 * ms}, {"b:2", 0}}
	if !reflect.DeepEqual(low, wantLow) {
		t.Fatalf("rnd=0: %v, want %v", low, wantLow)
	}

	high := p.Plan(addrs, 0, false, func() float64 { return 0.999999 })
	for i, base := range []time.Duration{0, 1000 * ms, 0, 500 * ms, 1000 * ms, 0} {
		d := high[i].Delay
		if base == 0 {
			if d != 0 {
				t.Errorf("attempt %d: delay %v, want 0 (zero delays are not jittered)", i, d)
			}
			continue
		}
		max := base * 12 / 10
		if d >= max || d < max-max/10000 {
			t.Errorf("attempt %d: delay %v, want just under %v", i, d, max)
		}
	}

	// Any value of the source stays in [0.8d, 1.2d).
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		for _, a := range p.Plan(addrs, 0, true, r.Float64) {
			if a.Delay == 0 {
				continue
			}
			if a.Delay < 400*ms || a.Delay >= 1200*ms {
				t.Fatalf("jittered delay %v out of bounds", a.Delay)
			}
		}
	}

	// A broken source is clamped.
	for _, v := range []float64{-5, 1, 7} {
		got := p.Plan(addrs, 0, false, func() float64 { return v })[1].Delay
		if got < 800*ms || got >= 1200*ms {
			t.Errorf("rnd=%v: delay %v out of [800ms,1200ms)", v, got)
		}
	}
}

func TestPlanNoRandomDrawForZeroDelays(t *testing.T) {
	p := DefaultPolicy()
	draws := 0
	p.Plan([]string{"a:1", "b:2", "c:3"}, 0, false, func() float64 { draws++; return 0.5 })
	if draws != 1 { // only the delay between the two passes
		t.Fatalf("random draws = %d, want 1", draws)
	}
}
