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
func New(agent string, c *client.Client) *Link { return &Link{agent: agent, c: c} }

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
	s.pw, s.done, s.sent = pw, make(chan result, 1), true
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
		err := s.l.c.Stream(s.ctx, http.MethodPut, api.PathInboundData+"?"+q.Encode(), nil, pr, &st)
		// The writer learns at once that the request has ended.
		pr.CloseWithError(errors.Join(errAborted, err))
		s.done <- result{at: st.Durable, err: s.l.note(sorted(err))}
	}()
}

func (s *stream) Write(p []byte) (int, error) {
	if s.pw == nil {
		s.start()
	}
	n, err := s.pw.Write(p)
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
	produced := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(pw, 256<<10)
		err := files(func(f transfer.FileFrame, data []byte) error { return transfer.WriteFrame(bw, f, data) })
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err) // nil: the body ends
		produced <- err
	}()
	var out api.InboundFiles
	err := l.c.Stream(ctx, http.MethodPut, api.PathInboundFiles+"?"+q.Encode(), nil, pr, &out)
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
