package agentclient

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/config"
	"github.com/ftagent/ftagent/pkg/ha"
)

// StopOptions says what ftstop stops.
type StopOptions struct {
	Instance  string // "" stops the active instance
	Immediate bool
	// Force stops the instance even when the voters left would have no
	// majority.
	Force bool
	// Progress, if set, is called about every ProgressEvery while the stop
	// waits for running transfers, with what it waits for.
	Progress func(api.StopProgress)
}

// ProgressEvery is how often Stop reports what a stop waits for.
const ProgressEvery = 2 * time.Second

// Stop stops one instance through the client, as ftstop does: the active (or
// the named instance) hands over if it is the active, and Stop returns once
// the stopped process has gone and the new active holds the lease: it
// answers for itself as ACTIVE at the new epoch, and still does a while
// later (a new active without a majority loses the lease within a leader
// lease timeout).
func Stop(ctx context.Context, cl *client.Client, cfg *config.Config, opts StopOptions) (api.StopResult, error) {
	req := api.StopRequest{Immediate: opts.Immediate, Force: opts.Force}
	// A stop waits for the hand-over (and, unless immediate, for in-flight
	// work to finish, up to drainTimeout): allow for it rather than give up
	// on a busy instance.
	sctx := client.WithRequestTimeout(ctx, time.Hour)
	if opts.Immediate {
		sctx = client.WithRequestTimeout(ctx, 45*time.Second)
	}
	addr := ""
	if opts.Instance != "" {
		var err error
		if addr, err = instanceAddress(ctx, cl, cfg, opts.Instance); err != nil {
			return api.StopResult{}, err
		}
	}
	type answer struct {
		res api.StopResult
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		var a answer
		if addr == "" {
			a.err = cl.Do(sctx, http.MethodPost, api.PathStop+"?"+api.QueryTarget+"="+api.TargetActive, req, &a.res)
		} else {
			a.err = cl.DoAt(sctx, addr, http.MethodPost, api.PathStop, req, &a.res)
		}
		answered <- a
	}()
	tick := time.NewTicker(ProgressEvery)
	defer tick.Stop()
	var a answer
wait:
	for {
		select {
		case a = <-answered:
			break wait
		case <-tick.C:
			if opts.Progress == nil {
				continue
			}
			if p, err := stopProgress(ctx, cl, addr); err == nil && p.Stopping && len(p.Waiting) > 0 {
				opts.Progress(p)
			}
		}
	}
	res := a.res
	if a.err != nil {
		return res, a.err
	}
	if err := waitGone(ctx, cl, res); err != nil {
		return res, err
	}
	if res.NewActive != "" {
		if err := confirmActive(ctx, cl, cfg, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// stopProgress asks what the stop of the instance at addr ("" for the
// active) waits for.
func stopProgress(ctx context.Context, cl *client.Client, addr string) (api.StopProgress, error) {
	qctx, cancel := context.WithTimeout(ctx, ProgressEvery)
	defer cancel()
	var p api.StopProgress
	if addr == "" {
		return p, cl.Do(qctx, http.MethodGet, api.PathStop+"?"+api.QueryTarget+"="+api.TargetActive, nil, &p)
	}
	return p, cl.DoAt(qctx, addr, http.MethodGet, api.PathStop, nil, &p)
}

// waitGone waits until the stopped instance no longer answers: it exits
// once it has answered the stop.
func waitGone(ctx context.Context, cl *client.Client, res api.StopResult) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		var st ha.InstanceStatus
		err := cl.DoAt(qctx, res.Address, http.MethodGet, api.PathInstance, nil, &st)
		cancel()
		if err != nil || st.Name != res.Instance {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s, but its process still answers after 30s", res.Message)
}

// confirmActive asks the new active itself until it answers as ACTIVE,
// holding the lease at res.Epoch or later (its own lease entry has
// committed and applied there), then keeps asking for a while to see that
// it keeps the lease. It sets res.Epoch to the epoch it answered with.
func confirmActive(ctx context.Context, cl *client.Client, cfg *config.Config, res *api.StopResult) error {
	addr := res.NewActiveAddress
	if addr == "" {
		a, err := instanceAddress(ctx, cl, cfg, res.NewActive)
		if err != nil {
			return fmt.Errorf("%s: could not confirm the new active: %w", res.Message, err)
		}
		addr = a
	}
	hold := time.Second
	if cfg != nil {
		hold = max(hold, 2*cfg.RaftHeartbeatTimeout)
	}
	holds := func(st ha.InstanceStatus, epoch uint64) bool {
		return st.Name == res.NewActive && st.Role == ha.RoleActive && st.Status == ha.StatusActive &&
			st.LeaseHolder == st.Name && st.Epoch >= epoch
	}
	ask := func() (ha.InstanceStatus, error) {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		var st ha.InstanceStatus
		err := cl.DoAt(qctx, addr, http.MethodGet, api.PathInstance, nil, &st)
		return st, err
	}
	describe := func(st ha.InstanceStatus, err error) string {
		if err != nil {
			return err.Error()
		}
		return fmt.Sprintf("it says %s, raft %s, lease epoch %d held by %q", st.Status, st.RaftState, st.Epoch, st.LeaseHolder)
	}
	// lost: it took the lease (its own lease entry has applied there) but
	// is no longer the raft leader.
	lost := func(st ha.InstanceStatus) bool {
		return st.Name == res.NewActive && st.LeaseHolder == st.Name && st.Epoch >= res.Epoch &&
			st.Status != ha.StatusActive && st.RaftState != raft.Leader.String()
	}
	deadline := time.Now().Add(15 * time.Second)
	var since time.Time
	var epoch uint64
	for {
		st, err := ask()
		switch {
		case since.IsZero() && err == nil && holds(st, res.Epoch):
			since, epoch = time.Now(), st.Epoch
		case since.IsZero() && err == nil && lost(st):
			return fmt.Errorf("%s stopped; %s took the lease at epoch %d but lost it (%s): the agent has no active; see ftagent show",
				res.Instance, res.NewActive, st.Epoch, describe(st, err))
		case !since.IsZero() && (err != nil || !holds(st, epoch) || st.Epoch != epoch):
			return fmt.Errorf("%s stopped; %s took the lease at epoch %d but lost it %v later (%s): the agent has no active; see ftagent show",
				res.Instance, res.NewActive, epoch, time.Since(since).Round(time.Millisecond), describe(st, err))
		case !since.IsZero() && time.Since(since) >= hold:
			res.Epoch = epoch
			res.Message = fmt.Sprintf("%s stopped; %s is now active (epoch %d)", res.Instance, res.NewActive, epoch)
			cl.Moved(addr)
			return nil
		case since.IsZero() && time.Now().After(deadline):
			return fmt.Errorf("%s, but %s does not answer as the active at epoch %d (%s); see ftagent show",
				res.Message, res.NewActive, res.Epoch, describe(st, err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// instanceAddress finds a named instance's address: from the properties file,
// else from the active's view.
func instanceAddress(ctx context.Context, cl *client.Client, cfg *config.Config, name string) (string, error) {
	if cfg != nil {
		for _, in := range cfg.Instances {
			if in.Name == name {
				return in.Address, nil
			}
		}
		return "", &config.Error{File: cfg.Path, Key: "instances", Msg: fmt.Sprintf("no instance named %q", name)}
	}
	v, err := FetchView(ctx, cl, cfg)
	if err != nil {
		return "", err
	}
	for _, iv := range v.Instances {
		if iv.Name == name {
			return iv.Address, nil
		}
	}
	return "", fmt.Errorf("the agent has no instance named %q", name)
}
