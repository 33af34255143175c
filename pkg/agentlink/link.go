// Package agentlink is another agent as this agent's active sends files to
// it: the client side of the inbound API (pkg/api/inbound.go), behind
// pkg/transfer's Receiver. It reaches the other agent's active through the
// same address-list client as users do (pkg/client: the instances of
// agent.NAME.instances in order, connect and reconnect attempts, pointers
// to the active), presenting this instance's own certificate.
package agentlink

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
)

// Link sends to one other agent.
type Link struct {
	agent string
	c     *client.Client
	// StallAfter bounds how long a streamed request (a file's bytes, a
	// group of small files) may go without its body moving and without
	// its answer: a link that drops packets silently would otherwise hold
	// it until TCP gives up, many minutes later. Set it before use; New
	// sets DefaultStall.
	StallAfter time.Duration

	mu sync.Mutex
	// failingSince is when requests began to fail to reach the agent
	// (zero while they reach it): the start of a loss of its group;
	// lastFailure when the last of them failed.
	failingSince, lastFailure time.Time
}

// note records the outcome of a request for Silent: an answer of any kind
// (a refusal too) shows the group is there; only unreachable ends count.
func (l *Link) note(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if errors.Is(err, transfer.ErrAgentUnreachable) {
		now := time.Now()
		// A streak is failures without a gap longer than streakGap:
		// after a quiet spell nothing is known of the group, and the
		// next failure starts a new streak rather than extend an old
		// one (which would count hours without a request as an outage).
		if l.failingSince.IsZero() || now.Sub(l.lastFailure) > streakGap {
			l.failingSince = now
		}
		l.lastFailure = now
	} else if err == nil || !errors.Is(err, context.Canceled) {
		l.failingSince = time.Time{}
	}
	return err
}

// streakGap is the longest quiet spell within one streak of failures: a
// transfer that keeps failing retries at least every 30 s (its backoff's
// bound) plus the client's connect plan.
const streakGap = 2 * time.Minute

// Silent is how long requests have failed to reach the agent in a row
// (0 while they reach it), and when the last of them failed.
func (l *Link) Silent() (time.Duration, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failingSince.IsZero() {
		return 0, time.Time{}
	}
	return time.Since(l.failingSince), l.lastFailure
}

// New is a link to agent through c (whose addresses are its instances).
func New(agent string, c *client.Client) *Link {
	return &Link{agent: agent, c: c, StallAfter: DefaultStall}
}

// DefaultStall is a Link's StallAfter unless set: as long as a request to
// another agent may take (it syncs and records in its own log before it
// answers).
const DefaultStall = 10 * time.Second

// progress is how a streamed request's sender waits on the other side:
// since when (UnixNano) it has been blocked writing the body, or waiting
// for the answer once the body has ended; 0 while it waits on nothing
// (producing the body, e.g. reading a source under a bandwidth limit, is
// not the other side's delay).
type progress struct{ since atomic.Int64 }

func (p *progress) wait() { p.since.Store(time.Now().UnixNano()) }
func (p *progress) done() { p.since.Store(0) }

// waitedWriter is a request body's writer (the pipe into the request)
// that marks the time each write waits for the request to take it.
type waitedWriter struct {
	w io.Writer
	p *progress
}

// waitChunk is the most a write hands over at once: a slow link that
// still moves takes each chunk well within StallAfter.
const waitChunk = 64 << 10

func (w waitedWriter) Write(b []byte) (int, error) {
	defer w.p.done()
	n := 0
	for n < len(b) {
		w.p.wait()
		m, err := w.w.Write(b[n:min(len(b), n+waitChunk)])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// stream sends body as one streamed request, abandoning it (as
// unreachable) when its sender has waited on the other side, to take
// the body or to answer, for StallAfter in a row (prog).
func (l *Link) stream(ctx context.Context, path string, body io.Reader, out any, prog *progress) error {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	stall := l.StallAfter
	if stall <= 0 {
		stall = DefaultStall
	}
	go func() {
		tick := time.NewTicker(max(stall/10, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if since := prog.since.Load(); since != 0 && time.Since(time.Unix(0, since)) > stall {
					cancel(errStalled)
					return
				}
			}
		}
	}()
	err := l.c.Stream(rctx, http.MethodPut, path, nil, body, out)
	close(done)
	if err != nil && errors.Is(context.Cause(rctx), errStalled) && ctx.Err() == nil {
		return &client.UnreachableError{Tried: []client.TriedAddress{{Address: l.c.Current(),
			Err: fmt.Sprintf("no progress for %v: the request's body was not taken, or its answer did not come (the link may drop packets)", stall)}}, Passes: 1}
	}
	return err
}

// errStalled is the cause of a streamed request abandoned by stream.
var errStalled = errors.New("the request made no progress")

// Agent is the name of the agent it sends to.
func (l *Link) Agent() string { return l.agent }

// Current is the address of the instance that last answered.
func (l *Link) Current() string { return l.c.Current() }

// Links are the agents this one may send to, by name.
type Links map[string]*Link

// Receiver implements transfer.Receivers.
func (ls Links) Receiver(agent string) (transfer.Receiver, bool) {
	l, ok := ls[agent]
	if !ok {
		return nil, false
	}
	return l, true
}

func ref(r transfer.InboundRef) api.InboundRef {
	return api.InboundRef{ID: r.ID, Epoch: r.Epoch, Path: r.Path, Size: r.Size, Digest: r.Digest}
}

// sorted turns the other agent's refusals into *transfer.InboundError;
// anything else (unreachable, failing over, busy) stays as it is: the
// sender retries it.
func sorted(err error) error {
	var ae *client.APIError
	var ue *client.UnreachableError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ue), errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable && ae.Code != api.InboundBusy:
		// No instance answered through the whole plan, or the one that
		// did has no active.
		return fmt.Errorf("%w: %v", transfer.ErrAgentUnreachable, err)
	}
	if !errors.As(err, &ae) || ae.Code == "" || ae.Code == api.InboundBusy {
		return err
	}
	code := ae.Code
	switch code {
	case api.InboundStale, api.InboundPartLost, api.InboundExists, api.InboundDigest, api.InboundRefused:
	case api.InboundNotAllowed:
		code = transfer.InboundRefused
	default:
		return err
	}
	return &transfer.InboundError{Code: code, Err: errors.New(ae.Message)}
}

func (l *Link) Status(ctx context.Context, r transfer.InboundRef) (transfer.InboundStatus, error) {
	var st api.InboundStatus
	if err := l.note(sorted(l.c.Do(ctx, http.MethodPost, api.PathInboundStatus, ref(r), &st))); err != nil {
		return transfer.InboundStatus{}, err
	}
	return transfer.InboundStatus{Durable: st.Durable, Resumable: st.Resumable, Committed: st.Committed, Digest: st.Digest, Exists: st.Exists,
		Receiver: st.Receiver, ReceiverEpoch: st.ReceiverEpoch}, nil
}

func (l *Link) Commit(ctx context.Context, r transfer.InboundRef, digest string, overwrite bool) error {
	return l.note(sorted(l.c.Do(ctx, http.MethodPost, api.PathInboundCommit, api.InboundCommit{InboundRef: ref(r), Digest: digest, Overwrite: overwrite}, nil)))
}

func (l *Link) Remove(ctx context.Context, r transfer.InboundRef) error {
	return l.note(sorted(l.c.Do(ctx, http.MethodPost, api.PathInboundRemove, ref(r), nil)))
}

func (l *Link) Mkdir(ctx context.Context, r transfer.InboundRef) error {
	return l.note(sorted(l.c.Do(ctx, http.MethodPost, api.PathInboundMkdir, ref(r), nil)))
}

func (l *Link) End(ctx context.Context, r transfer.InboundRef) error {
	return l.note(sorted(l.c.Do(ctx, http.MethodPost, api.PathInboundEnd, ref(r), nil)))
}

// Hello asks the other agent's active who receives, and returns its
// answer, the address that gave it and the round trip.
func (l *Link) Hello(ctx context.Context) (api.InboundStatus, string, time.Duration, error) {
	var st api.InboundStatus
	began := time.Now()
	err := l.c.Do(ctx, http.MethodPost, api.PathInboundHello, nil, &st)
	return st, l.c.Current(), time.Since(began), err
}

// Addresses are the other agent's instances, as configured.
func (l *Link) Addresses() []string { return l.c.Addresses() }

// Send starts the file's bytes at offset (see transfer.Receiver).
func (l *Link) Send(ctx context.Context, r transfer.InboundRef, offset int64, overwrite bool) (endpoint.PartFile, error) {
	return &stream{l: l, ctx: ctx, ref: r, offset: offset, overwrite: overwrite}, nil
}

// stream writes a file's bytes as one PUT per stretch between syncs: the
// bytes go through a pipe into the request body as they are written, so
// that nothing waits for a round trip but a sync, and no more than a
// write's buffer is held.
type stream struct {
	l         *Link
	ctx       context.Context
	ref       transfer.InboundRef
	offset    int64 // where the next request begins: the last durable point
	overwrite bool
	sent      bool // a request was made

	pw   *io.PipeWriter
	prog *progress
	done chan result
}

type result struct {
	at  int64
	err error
}

// errAborted ends a request whose bytes will not be synced.
var errAborted = errors.New("the sender abandoned the write")

func (s *stream) start() {
	pr, pw := io.Pipe()
	s.pw, s.done, s.sent, s.prog = pw, make(chan result, 1), true, &progress{}
	q := url.Values{}
	q.Set(api.QueryInboundID, s.ref.ID)
	q.Set(api.QueryInboundEpoch, strconv.FormatUint(s.ref.Epoch, 10))
	q.Set(api.QueryInboundPath, s.ref.Path)
	q.Set(api.QueryInboundSize, strconv.FormatInt(s.ref.Size, 10))
	q.Set(api.QueryInboundOffset, strconv.FormatInt(s.offset, 10))
	if s.overwrite {
		q.Set(api.QueryInboundOverwrite, "true")
	}
	go func() {
		var st api.InboundStatus
		err := s.l.stream(s.ctx, api.PathInboundData+"?"+q.Encode(), pr, &st, s.prog)
		// The writer learns at once that the request has ended.
		pr.CloseWithError(errors.Join(errAborted, err))
		s.done <- result{at: st.Durable, err: s.l.note(sorted(err))}
	}()
}

func (s *stream) Write(p []byte) (int, error) {
	if s.pw == nil {
		s.start()
	}
	n, err := waitedWriter{w: s.pw, p: s.prog}.Write(p)
	if err != nil {
		// The request ended before its body: its answer says why.
		res := s.finish()
		if res.err != nil {
			return n, res.err
		}
		return n, err
	}
	return n, nil
}

func (s *stream) finish() result {
	res := <-s.done
	s.pw = nil
	return res
}

// Sync ends the request in flight and returns once the other agent has
// made its bytes durable and recorded them.
func (s *stream) Sync() error {
	if s.pw == nil {
		if s.sent || s.ref.Size != 0 {
			return nil // nothing written since the last sync
		}
		s.start() // an empty file: its one (empty) request
	}
	s.prog.wait() // for the answer, from now on
	_ = s.pw.Close()
	res := s.finish()
	if res.err != nil {
		return res.err
	}
	s.offset = res.at
	return nil
}

// Close abandons a request in flight: its bytes are not recorded there.
func (s *stream) Close() error {
	if s.pw != nil {
		s.pw.CloseWithError(errAborted)
		s.finish()
	}
	return nil
}

// SendFiles sends small files whole in one PUT, their frames written into
// the request body as files produces them.
func (l *Link) SendFiles(ctx context.Context, r transfer.InboundRef, overwrite bool, files func(emit func(transfer.FileFrame, []byte) error) error) ([]transfer.FileResult, error) {
	q := url.Values{}
	q.Set(api.QueryInboundID, r.ID)
	q.Set(api.QueryInboundEpoch, strconv.FormatUint(r.Epoch, 10))
	if overwrite {
		q.Set(api.QueryInboundOverwrite, "true")
	}
	pr, pw := io.Pipe()
	prog := &progress{}
	produced := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(waitedWriter{w: pw, p: prog}, 256<<10)
		err := files(func(f transfer.FileFrame, data []byte) error { return transfer.WriteFrame(bw, f, data) })
		if err == nil {
			err = bw.Flush()
		}
		if err == nil {
			prog.wait() // for the answer, from now on
		}
		pw.CloseWithError(err) // nil: the body ends
		produced <- err
	}()
	var out api.InboundFiles
	err := l.stream(ctx, api.PathInboundFiles+"?"+q.Encode(), pr, &out, prog)
	pr.CloseWithError(errAborted) // the producer stops if the request ended first
	perr := <-produced
	if perr != nil && !errors.Is(perr, errAborted) {
		return nil, perr // reading the sources failed: the request was cut
	}
	if err := l.note(sorted(err)); err != nil {
		return nil, err
	}
	res := make([]transfer.FileResult, len(out.Files))
	for i, f := range out.Files {
		code := f.Code
		if code == api.InboundNotAllowed {
			code = transfer.InboundRefused
		}
		res[i] = transfer.FileResult{Path: f.Path, Code: code, Error: f.Error}
	}
	return res, nil
}
