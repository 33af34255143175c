package client

import (
	"math/rand/v2"
	"time"
)

// Policy says how a Client works through its ordered address list.
//
// The semantics combine TIBCO EMS fault-tolerant clients (the list is tried in
// order with wrap-around, with separate attempt counts and delays for the first
// connect and for a reconnect) and the SQL Anywhere QAnywhere agent (the first
// address is the primary, and may be retried before the alternates are tried).
//
// A Policy is used as given; DefaultPolicy holds the defaults. Out-of-range values
// are clamped: fewer than one pass means one pass, negative delays or retries mean
// zero, Jitter is clamped to [0, 1], and a RequestTimeout that is not positive
// means the default (2s).
type Policy struct {
	ConnectAttempts   int           // passes over the list on first connect; default 2
	ConnectDelay      time.Duration // pause between first-connect passes; default 500ms
	ReconnectAttempts int           // passes over the list after a connection that worked fails; default 4
	ReconnectDelay    time.Duration // pause between reconnect passes; default 500ms
	PrimaryRetries    int           // extra tries of the first (primary) address before the others, each pass; default 0 (QAnywhere -fr)
	PrimaryRetryDelay time.Duration // between those tries; default 500ms (QAnywhere -fd)
	Jitter            float64       // every delay is multiplied by a random factor in [1-Jitter, 1+Jitter]; default 0.2
	RequestTimeout    time.Duration // per HTTP attempt; default 2s
}

// Default values of a Policy.
const (
	DefaultConnectAttempts   = 2
	DefaultConnectDelay      = 500 * time.Millisecond
	DefaultReconnectAttempts = 4
	DefaultReconnectDelay    = 500 * time.Millisecond
	DefaultPrimaryRetries    = 0
	DefaultPrimaryRetryDelay = 500 * time.Millisecond
	DefaultJitter            = 0.2
	DefaultRequestTimeout    = 2 * time.Second
)

// DefaultPolicy returns the default policy: first connect 2 passes 500ms apart,
// reconnect 4 passes 500ms apart, no extra primary retries (500ms apart when set),
// 20% jitter and a 2s timeout per HTTP attempt.
func DefaultPolicy() Policy {
	return Policy{
		ConnectAttempts:   DefaultConnectAttempts,
		ConnectDelay:      DefaultConnectDelay,
		ReconnectAttempts: DefaultReconnectAttempts,
		ReconnectDelay:    DefaultReconnectDelay,
		PrimaryRetries:    DefaultPrimaryRetries,
		PrimaryRetryDelay: DefaultPrimaryRetryDelay,
		Jitter:            DefaultJitter,
		RequestTimeout:    DefaultRequestTimeout,
	}
}

// Attempt is one planned try: which address, and how long to wait before it
// (already jittered).
type Attempt struct {
	Address string
	Delay   time.Duration
}

// Plan returns the sequence of attempts for one connect (reconnect=false) or one
// reconnect (reconnect=true) over addrs, starting at list index start. rnd returns
// values in [0,1) and drives the jitter; nil means math/rand/v2.
//
// Rules:
//   - Each pass tries the addresses in order beginning at start and wrapping
//     around, so that every address is tried once per pass (EMS semantics).
//   - On first connect start is ignored: it is always 0.
//   - A pass that begins at the primary (index 0) - every first-connect pass, and
//     reconnect passes when start is 0 - tries the primary 1+PrimaryRetries times,
//     with PrimaryRetryDelay between those tries, before the alternates (QAnywhere
//     -fr/-fd). A primary met later in a wrapped pass is tried once.
//   - Between passes the plan waits ConnectDelay (ReconnectDelay when reconnecting).
//   - There is no delay before the very first attempt, nor between addresses
//     within a pass.
//   - Every non-zero delay is jittered by a factor in [1-Jitter, 1+Jitter).
//
// The plan has ConnectAttempts (or ReconnectAttempts) passes, at least one. It is
// empty when addrs is empty.
func (p Policy) Plan(addrs []string, start int, reconnect bool, rnd func() float64) []Attempt {
	n := len(addrs)
	if n == 0 {
		return nil
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	between := p.ConnectDelay
	if reconnect {
		between = p.ReconnectDelay
	} else {
		start = 0
	}
	start = ((start % n) + n) % n
	retries := max(p.PrimaryRetries, 0)
	passes := p.passes(reconnect)

	plan := make([]Attempt, 0, passes*(n+retries))
	for pass := 0; pass < passes; pass++ {
		for k := 0; k < n; k++ {
			i := (start + k) % n
			tries := 1
			if i == 0 && k == 0 {
				tries += retries
			}
			for t := 0; t < tries; t++ {
				var d time.Duration
				switch {
				case len(plan) == 0:
					d = 0
				case t > 0:
					d = p.PrimaryRetryDelay
				case k == 0:
					d = between
				}
				plan = append(plan, Attempt{Address: addrs[i], Delay: p.jitter(d, rnd)})
			}
		}
	}
	return plan
}

// passes is the number of passes over the list for a connect or a reconnect.
func (p Policy) passes(reconnect bool) int {
	if reconnect {
		return max(p.ReconnectAttempts, 1)
	}
	return max(p.ConnectAttempts, 1)
}

// requestTimeout is the time limit of one HTTP attempt.
func (p Policy) requestTimeout() time.Duration {
	if p.RequestTimeout <= 0 {
		return DefaultRequestTimeout
	}
	return p.RequestTimeout
}

// jitter multiplies d by a random factor in [1-Jitter, 1+Jitter). A delay that is
// not positive is zero and draws no random number.
func (p Policy) jitter(d time.Duration, rnd func() float64) time.Duration {
	if d <= 0 {
		return 0
	}
	j := min(max(p.Jitter, 0), 1)
	if j == 0 {
		return d
	}
	r := rnd()
	if r < 0 || r != r { // negative or NaN: a broken source; use the low end
		r = 0
	}
	if r >= 1 {
		r = 0.9999999999
	}
	return time.Duration(float64(d) * (1 - j + 2*j*r))
}
