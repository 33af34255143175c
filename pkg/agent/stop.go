package agent

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/config"
	"github.com/ftagent/ftagent/pkg/ha"
)

// StopOptions says what ftstop stops.
type StopOptions struct {
	Instance  string // "" stops the active instance
	Immediate bool
}

// Stop stops one instance through the client, as ftstop does: the active (or
// the named instance) hands over if it is the active, and Stop returns once
// the new active holds the lease and the stopped process has gone.
func Stop(ctx context.Context, cl *client.Client, cfg *config.Config, opts StopOptions) (StopResult, error) {
	var res StopResult
	req := StopRequest{Immediate: opts.Immediate}
	// A stop waits for the hand-over (and, unless immediate, for in-flight
	// work to finish): allow for it rather than give up on a busy instance.
	sctx := client.WithRequestTimeout(ctx, time.Hour)
	if opts.Immediate {
		sctx = client.WithRequestTimeout(ctx, 45*time.Second)
	}
	if opts.Instance == "" {
		if err := cl.Do(sctx, http.MethodPost, PathStop+"?target=active", req, &res); err != nil {
			return res, err
		}
	} else {
		addr, err := instanceAddress(ctx, cl, cfg, opts.Instance)
		if err != nil {
			return res, err
		}
		if err := cl.DoAt(sctx, addr, http.MethodPost, PathStop, req, &res); err != nil {
			return res, err
		}
	}
	if res.NewActive != "" {
		// Confirm through the agent itself that the new active holds the lease.
		v, err := FetchView(ctx, cl, cfg)
		if err != nil {
			return res, fmt.Errorf("%s: could not confirm the new active: %w", res.Message, err)
		}
		if v.Active == "" || v.Epoch < res.Epoch {
			return res, fmt.Errorf("%s: but the agent reports active %q at epoch %d", res.Message, v.Active, v.Epoch)
		}
		res.NewActive, res.Epoch = v.Active, v.Epoch
	}
	// The instance exits once it has answered; wait until it has gone, so
	// that ftstop returning means the process is stopped.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		var st ha.InstanceStatus
		err := cl.DoAt(qctx, res.Address, http.MethodGet, PathInstance, nil, &st)
		cancel()
		if err != nil || st.Name != res.Instance {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return res, fmt.Errorf("%s, but its process still answers after 30s", res.Message)
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
