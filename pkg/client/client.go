// Package client is the one way every ftagent command (and later the agents
// themselves) talks to the instances of an agent: an ordered address list with
// failover.
//
// A Client sends JSON requests over HTTP to one instance at a time. Connection
// errors, timeouts and HTTP 503 move a request on to the next address of a Plan
// (see Policy); HTTP 421 with an "Ftagent-Active" header is a pointer to the
// active instance and is followed at once. Any other answer is final.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// ActiveHeader is the header of a 421 (Misdirected Request) answer that names the
// active instance as host:port.
const ActiveHeader = "Ftagent-Active"

// maxHops is how many 421 pointers in a row one attempt follows.
const maxHops = 3

// maxErrorBody bounds how much of a non-2xx body is read.
const maxErrorBody = 64 << 10

// Client sends requests to the instances of one agent. It is safe for
// concurrent use.
type Client struct {
	addrs  []string
	policy Policy
	sleep  func(ctx context.Context, d time.Duration) error
	rnd    func() float64
	hc     *http.Client
	dial   func(ctx context.Context, network, address string) (net.Conn, error)

	// preferred is tried once before the first-connect plan (see
	// WithPreferred); onAnswer is told of each new answering address.
	preferred string
	onAnswer  func(address string)
	// refusal classifies connection errors that retrying cannot mend (see
	// WithRefusal).
	refusal func(err error) (reason string, ok bool)

	// header is sent with every request (WithHeader).
	header http.Header
	// onlyListed: pointers to addresses not in addrs are not followed
	// (WithOnlyListed).
	onlyListed bool

	// connectTimeout bounds each attempt's connection (WithConnectTimeout).
	connectTimeout time.Duration

	// group names the agent whose instances addrs are (WithGroup); alts
	// are the clients of its alternate groups (WithAlternates).
	group string
	alts  []*Client

	mu        sync.Mutex
	current   string // the address that last answered
	connected bool   // a request has succeeded: failures now use the reconnect plan
	at        int    // the group that answered last: 0 this one, k alts[k-1]
}

// WithConnectTimeout bounds the connection (TCP and TLS handshake) of
// each attempt to d, apart from the attempt's request timeout: a host
// that drops packets silently is given up after d, not after the whole
// request timeout, which a slow answer may need.
func WithConnectTimeout(d time.Duration) Option { return func(c *Client) { c.connectTimeout = d } }

// WithGroup names the agent whose instances the client's addresses are,
// for Group and the errors of its alternates (WithAlternates).
func WithGroup(name string) Option { return func(c *Client) { c.group = name } }

// WithAlternates gives the client the clients of other groups of
// instances that share no state with its own (an agent's alternates:
// another site), to turn to, in order, when no instance of its own
// group answers through the whole connect or reconnect plan (Do's
// *UnreachableError). As a messaging client with two fault-tolerant
// pairs does, it stays with the group that answered for as long as it
// answers, and goes on to the next one (round to its own) only when that
// group is lost too. An answer of any kind, an error included, is an
// answer: only a group none of whose instances could be reached is left.
// Each alternate carries its own addresses, policy and dialer (its own
// certificate and expected identity).
func WithAlternates(alts ...*Client) Option {
	return func(c *Client) { c.alts = append(c.alts, alts...) }
}

// Group names the group that answered the last request (WithGroup's name,
// or an alternate's), and whether it is an alternate.
func (c *Client) Group() (name string, alternate bool) {
	c.mu.Lock()
	at := c.at
	c.mu.Unlock()
	if at == 0 {
		return c.group, false
	}
	return c.alts[at-1].group, true
}

// PreferredConnectTimeout bounds the connection (and TLS handshake) to the
// preferred address (WithPreferred): a remembered instance whose host has
// gone costs a command at most this before the plan begins.
const PreferredConnectTimeout = 500 * time.Millisecond

// Option configures a Client.
type Option func(*Client)

// WithPolicy sets the failover policy (default DefaultPolicy()).
func WithPolicy(p Policy) Option { return func(c *Client) { c.policy = p } }

// WithSleep replaces the wait before a delayed attempt; it must return an error
// when ctx is done. Tests use it to record delays without sleeping.
func WithSleep(f func(ctx context.Context, d time.Duration) error) Option {
	return func(c *Client) {
		if f != nil {
			c.sleep = f
		}
	}
}

// WithRand sets the random source of the jitter; f returns values in [0,1).
func WithRand(f func() float64) Option {
	return func(c *Client) {
		if f != nil {
			c.rnd = f
		}
	}
}

// WithDialer sets how connections to instances are opened (e.g. a
// trust.Dialer's DialContext, which does TLS itself: the request URLs stay
// http://, and TLS is the connection's business).
func WithDialer(dial func(ctx context.Context, network, address string) (net.Conn, error)) Option {
	return func(c *Client) { c.dial = dial }
}

// WithOnlyListed makes the client reach only the addresses it was given:
// a 421 pointer to another address is not followed, and the plan goes on
// with the next listed address. For links to another agent, whose
// instances may know themselves by addresses this side cannot reach.
func WithOnlyListed() Option { return func(c *Client) { c.onlyListed = true } }

// WithHeader sends the header key: value with every request.
func WithHeader(key, value string) Option {
	return func(c *Client) {
		if c.header == nil {
			c.header = http.Header{}
		}
		c.header.Set(key, value)
	}
}

// WithPreferred names an address to try first, once, before the
// first-connect plan: the instance that answered last time (the commands
// remember it between runs), so that a request for the active reaches it
// at once rather than through a 421 pointer from the primary. Connecting
// to it may take at most PreferredConnectTimeout (with the client's own
// HTTP client); if it cannot be reached, or does not answer, the plan
// follows as if it had not been named. "" or the primary changes nothing.
func WithPreferred(address string) Option { return func(c *Client) { c.preferred = address } }

// WithAnswered calls f with the address that answered a request (Do)
// whenever it differs from the one before: for a caller that remembers
// it (see WithPreferred). f must not call the client.
func WithAnswered(f func(address string)) Option { return func(c *Client) { c.onAnswer = f } }

// WithRefusal sets how the client recognises an error that retrying
// cannot mend, such as a certificate the instance refuses or one the
// client does not trust: f returns the reason to give the user. Once every
// address of the list has failed with such an error, Do stops with a
// *RefusedError rather than going on with its plan (more passes, their
// delays) and ending with an *UnreachableError.
func WithRefusal(f func(err error) (reason string, ok bool)) Option {
	return func(c *Client) { c.refusal = f }
}

// WithHTTPClient sets the HTTP client. Its Timeout, if any, applies on top of
// Policy.RequestTimeout.
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) {
		if h != nil {
			c.hc = h
		}
	}
}

// New returns a Client for the ordered address list addrs (host:port each; the
// first is the primary). Entries are trimmed, empty ones dropped, and
// comma-separated lists accepted as by ParseAddresses. It is an error if no
// address is left or one is not host:port.
func New(addrs []string, opts ...Option) (*Client, error) {
	list, err := ParseAddresses(addrs...)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, errors.New("no agent instance address given")
	}
	c := &Client{
		addrs:  list,
		policy: DefaultPolicy(),
		sleep:  sleepContext,
		rnd:    rand.Float64,
	}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = defaultHTTPClient(c.dial)
	}
	return c, nil
}

// defaultHTTPClient talks to instances directly (never through an HTTP proxy,
// whose own error answers would hide a dead instance) and drops idle connections
// soon, so that a failover does not leave connections to a deposed active around.
func defaultHTTPClient(dial func(ctx context.Context, network, address string) (net.Conn, error)) *http.Client {
	if dial == nil {
		dial = (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 15 * time.Second,
		}).DialContext
	}
	bounded := func(ctx context.Context, network, address string) (net.Conn, error) {
		if d, ok := ctx.Value(connectTimeoutKey{}).(time.Duration); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return dial(ctx, network, address)
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           bounded,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       10 * time.Second,
			ResponseHeaderTimeout: 0, // the per-attempt context bounds it
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Addresses returns the client's address list.
func (c *Client) Addresses() []string { return slices.Clone(c.addrs) }

// Current returns the address that last answered (or "" before any): an
// alternate group's, when one answered last (WithAlternates).
func (c *Client) Current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at > 0 {
		return c.alts[c.at-1].Current()
	}
	return c.current
}

func (c *Client) answered(address string) {
	c.mu.Lock()
	changed := c.current != address
	c.current = address
	c.connected = true
	c.mu.Unlock()
	if changed && c.onAnswer != nil {
		c.onAnswer(address)
	}
}

// Moved records that the active is now at address, learnt otherwise than
// from an answer (a stop that handed the lease over names the new active):
// the next request starts there, as if it had answered last.
func (c *Client) Moved(address string) {
	if checkAddress(address) != nil {
		return
	}
	c.answered(address)
}

// Do sends one JSON request (body may be nil) and decodes a 2xx JSON response
// into out (may be nil; an empty body leaves it untouched).
//
// Before the first success it follows the first-connect plan from the primary;
// after that, the reconnect plan starting at the address that last answered,
// wrapping around (an address reached through a 421 pointer that is not in the
// list takes part as if appended to it). Connection errors, timeouts (per
// attempt, Policy.RequestTimeout) and HTTP 503 move on to the next planned
// attempt. HTTP 421 with an Ftagent-Active header is followed at once, without
// counting as a failed attempt, at most 3 hops in a row; 421 without a usable
// pointer, or a 4th hop, counts as a failed attempt. A 2xx answer, and any other
// non-2xx answer (returned as *APIError), are final and make their address the
// current one.
//
// When every planned attempt fails Do returns *UnreachableError. It stops at once
// when ctx is done, returning an error that wraps ctx.Err().
//
// Note that a request that timed out may have been carried out by the instance
// before it is sent to the next one.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	if len(c.alts) == 0 {
		return c.do(ctx, method, path, body, out)
	}
	c.mu.Lock()
	at := c.at
	c.mu.Unlock()
	n := len(c.alts) + 1
	var all UnreachableError
	for k := range n {
		g := (at + k) % n
		var err error
		if g == 0 {
			err = c.do(ctx, method, path, body, out)
		} else {
			err = c.alts[g-1].Do(ctx, method, path, body, out)
		}
		var ue *UnreachableError
		if !errors.As(err, &ue) || ctx.Err() != nil {
			if ctx.Err() == nil {
				c.mu.Lock()
				c.at = g
				c.mu.Unlock()
			}
			return err
		}
		all.Tried = append(all.Tried, ue.Tried...)
		all.Passes = max(all.Passes, ue.Passes)
	}
	return &all
}

// do is Do within this client's own group.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	payload, err := encodeBody(body)
	if err != nil {
		return err
	}

	c.mu.Lock()
	list, start, reconnect := c.addrs, 0, c.connected
	if reconnect {
		start = slices.Index(list, c.current)
		if start < 0 {
			list = append(slices.Clone(list), c.current)
			start = len(list) - 1
		}
	}
	plan := c.policy.Plan(list, start, reconnect, c.rnd)
	preferred := !reconnect && c.preferred != "" && c.preferred != list[0]
	if preferred {
		plan = append([]Attempt{{Address: c.preferred}}, plan...)
	}
	c.mu.Unlock()

	var tried triedSet
	refused := map[string]string{} // address -> reason, for WithRefusal
	for i, a := range plan {
		if err := ctx.Err(); err != nil {
			return stopped(err, &tried)
		}
		if a.Delay > 0 {
			if err := c.sleep(ctx, a.Delay); err != nil {
				return stopped(err, &tried)
			}
		}
		address := a.Address
		actx := ctx
		if preferred && i == 0 {
			actx = context.WithValue(ctx, connectTimeoutKey{}, PreferredConnectTimeout)
		}
		for hops := 0; ; hops++ {
			if err := ctx.Err(); err != nil {
				return stopped(err, &tried)
			}
			r := c.attempt(actx, address, method, path, payload, out)
			actx = ctx // a pointer's target is connected to as any other
			switch r.kind {
			case resultDone:
				c.answered(address)
				return nil
			case resultFinal:
				if r.answered {
					c.answered(address)
				}
				return r.err
			case resultPointer:
				if c.onlyListed && !slices.Contains(c.addrs, r.pointer) {
					// An address this client was not given (the other
					// side's own view of its instances, perhaps behind a
					// NAT or a relay): the next listed address is tried.
					tried.add(address, "not the active; points to "+r.pointer+", which is not in the list")
					break
				}
				if hops < maxHops {
					tried.add(address, "not the active; points to "+r.pointer)
					address = r.pointer
					continue
				}
				tried.add(address, fmt.Sprintf("not the active; gave up after %d pointers in a row", maxHops))
			case resultFailed:
				if err := ctx.Err(); err != nil {
					return stopped(err, &tried)
				}
				tried.add(address, r.reason)
				if why, ok := c.refused(r.err); ok {
					refused[address] = why
					if refusedAll(list, refused) {
						return &RefusedError{Tried: slices.Clone(tried.list), Reason: why}
					}
				} else {
					delete(refused, address)
				}
			}
			break
		}
	}
	return &UnreachableError{Tried: tried.list, Passes: c.policy.passes(reconnect)}
}

// DoAt sends one request to address only: no failover and no pointer following
// (a 421 or 503 answer is returned as *APIError). A connection error or timeout
// is returned as *UnreachableError naming that one address. DoAt does not change
// Current or the connect/reconnect state of Do.
func (c *Client) DoAt(ctx context.Context, address, method, path string, body, out any) error {
	address = strings.TrimSpace(address)
	if err := checkAddress(address); err != nil {
		return err
	}
	payload, err := encodeBody(body)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := c.attempt(ctx, address, method, path, payload, out)
	switch r.kind {
	case resultDone:
		return nil
	case resultFinal:
		return r.err
	case resultPointer:
		return r.apiErr
	}
	if err := ctx.Err(); err != nil {
		return stopped(err, nil)
	}
	if r.apiErr != nil {
		return r.apiErr
	}
	return &UnreachableError{Tried: []TriedAddress{{Address: address, Err: r.reason}}, Passes: 1}
}

// Stream sends one request whose body is streamed from body (bytes that
// cannot be sent again, so there is no failover and no per-attempt
// timeout: ctx bounds it) to the instance that last answered, or the first
// address when none has. A 2xx answer is decoded into out; any other is
// returned as *APIError (a 421 included: the caller's next Do follows its
// pointer); a connection error as *UnreachableError naming the address.
func (c *Client) Stream(ctx context.Context, method, path string, header http.Header, body io.Reader, out any) error {
	c.mu.Lock()
	address := c.current
	if address == "" {
		address = c.addrs[0]
	}
	c.mu.Unlock()
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+address+path, body)
	if err != nil {
		return fmt.Errorf("building request %s %s: %w", method, path, err)
	}
	for _, h := range []http.Header{c.header, header} {
		for k, v := range h {
			req.Header[k] = v
		}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.hc.CloseIdleConnections()
		if ctx.Err() != nil {
			return stopped(ctx.Err(), nil)
		}
		return &UnreachableError{Tried: []TriedAddress{{Address: address, Err: describe(err, 0)}}, Passes: 1}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := decodeBody(resp.Body, out); err != nil {
			return fmt.Errorf("%s: %s %s: decoding response: %w", address, method, path, err)
		}
		return nil
	}
	apiErr := &APIError{Address: address, Status: resp.StatusCode}
	apiErr.Message, apiErr.Code = errorBody(resp.Body)
	return apiErr
}

// stopped is the error of a request abandoned because its context is done.
func stopped(err error, tried *triedSet) error {
	if tried == nil || len(tried.list) == 0 {
		return err
	}
	u := UnreachableError{Tried: tried.list}
	return fmt.Errorf("%w (tried so far: %s)", err, u.triedList())
}

func encodeBody(body any) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	return b, nil
}

type resultKind int

const (
	resultDone    resultKind = iota // 2xx, decoded
	resultFinal                     // return err to the caller
	resultPointer                   // 421 with a pointer to the active
	resultFailed                    // try the next planned attempt
)

type result struct {
	kind     resultKind
	err      error     // resultFinal; resultFailed: the transport's error, if any
	answered bool      // resultFinal: the instance answered (it becomes current)
	pointer  string    // resultPointer
	reason   string    // resultFailed: short text for TriedAddress
	apiErr   *APIError // 421 or 503 seen as an API error (DoAt)
}

type timeoutKey struct{}

// connectTimeoutKey carries a bound on connecting for one attempt (the
// preferred address's).
type connectTimeoutKey struct{}

// WithRequestTimeout returns a context under which each attempt of a request
// may take d instead of Policy.RequestTimeout: for requests that are slow by
// nature (a stop that waits for a hand-over), where the short default would
// move on from an instance that is merely busy.
func WithRequestTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, timeoutKey{}, d)
}

// attempt makes one HTTP request to address within Policy.RequestTimeout.
func (c *Client) attempt(ctx context.Context, address, method, path string, payload []byte, out any) result {
	timeout := c.policy.requestTimeout()
	if d, ok := ctx.Value(timeoutKey{}).(time.Duration); ok && d > 0 {
		timeout = d
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, set := ctx.Value(connectTimeoutKey{}).(time.Duration); !set && c.connectTimeout > 0 {
		actx = context.WithValue(actx, connectTimeoutKey{}, c.connectTimeout)
	}

	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, method, "http://"+address+path, rd)
	if err != nil {
		return result{kind: resultFinal, err: fmt.Errorf("building request %s %s: %w", method, path, err)}
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		// Drop pooled connections: after a failure they may lead to a dead
		// instance.
		c.hc.CloseIdleConnections()
		return result{kind: resultFailed, reason: describe(err, timeout), err: err}
	}
	defer resp.Body.Close()

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := decodeBody(resp.Body, out); err != nil {
			return result{kind: resultFinal, answered: true,
				err: fmt.Errorf("%s: %s %s: decoding response: %w", address, method, path, err)}
		}
		return result{kind: resultDone}
	}

	apiErr := &APIError{Address: address, Status: resp.StatusCode}
	apiErr.Message, apiErr.Code = errorBody(resp.Body)
	switch resp.StatusCode {
	case http.StatusMisdirectedRequest:
		ptr := strings.TrimSpace(resp.Header.Get(ActiveHeader))
		if ptr != "" && checkAddress(ptr) == nil {
			return result{kind: resultPointer, pointer: ptr, apiErr: apiErr}
		}
		reason := "not the active, and no " + ActiveHeader + " pointer"
		if apiErr.Message != "" {
			reason += ": " + apiErr.Message
		}
		return result{kind: resultFailed, reason: reason, apiErr: apiErr}
	case http.StatusServiceUnavailable:
		reason := "unavailable (503)"
		if apiErr.Message != "" {
			reason += ": " + apiErr.Message
		}
		return result{kind: resultFailed, reason: reason, apiErr: apiErr}
	}
	return result{kind: resultFinal, answered: true, err: apiErr}
}

// refused classifies a connection error with WithRefusal's function.
func (c *Client) refused(err error) (string, bool) {
	if c.refusal == nil || err == nil {
		return "", false
	}
	return c.refusal(err)
}

// refusedAll reports whether every address of list has refused.
func refusedAll(list []string, refused map[string]string) bool {
	for _, a := range list {
		if _, ok := refused[a]; !ok {
			return false
		}
	}
	return true
}

// Raw, as Do's out, receives a 2xx response body as it came, undecoded:
// for a caller that passes it on, or decodes only part of it.
type Raw []byte

// decodeBody decodes a JSON body into out (or reads it into a *Raw); an
// empty body leaves out untouched. The rest of the body is drained so that
// the connection can be reused.
func decodeBody(body io.Reader, out any) error {
	defer io.Copy(io.Discard, io.LimitReader(body, maxErrorBody))
	if out == nil {
		return nil
	}
	if raw, ok := out.(*Raw); ok {
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		*raw = b
		return nil
	}
	err := json.NewDecoder(body).Decode(out)
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// errorBody returns the "error" field of a JSON error body, or else the body
// text (trimmed, shortened), and its "code" field, if any.
func errorBody(body io.Reader) (msg, code string) {
	b, _ := io.ReadAll(io.LimitReader(body, maxErrorBody))
	var e struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error, e.Code
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s, ""
}

// describe turns a transport error into a short reason such as
// "connection refused" or "no answer within 10s".
func describe(err error, timeout time.Duration) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "no answer within " + timeout.String()
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		if dns.IsNotFound {
			return "no such host"
		}
		return dns.Err
	}
	for {
		switch e := err.(type) {
		case *url.Error:
			err = e.Err
			continue
		case *net.OpError:
			err = e.Err
			continue
		case *os.SyscallError:
			err = e.Err
			continue
		}
		break
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "connection closed without an answer"
	}
	return err.Error()
}
