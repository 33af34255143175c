// Package agentclient is the client side of an agent's API: typed calls
// (create, follow, list and cancel transfers, and read a transfer's files a
// page at a time, or all of them page after page; the agent's view; stop an
// instance; list the raft group's members and remove one) over pkg/client, which carries every request with its failover
// and retry policy. The wire types are pkg/api's; the server is pkg/agent,
// which this package does not import. The commands (cmd/ftagent, cmd/ftstop),
// the dev agent, the tests and the benchmarks talk to an agent through it.
package agentclient

import (
	"context"
	"errors"
	"net/http"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/config"
	"github.com/ftagent/ftagent/pkg/ha"
)

// FetchView returns the agent as its active sees it, reached through any
// instance. When no instance can point to an active (an election, or too few
// instances up), it asks every address for its own status and assembles what
// they say, with status STARTING; when none answers, status UNREACHABLE and
// the client's error. cfg, when known, names the instances that do not answer.
func FetchView(ctx context.Context, cl *client.Client, cfg *config.Config) (ha.AgentView, error) {
	var v ha.AgentView
	err := cl.Do(ctx, http.MethodGet, api.PathAgent, nil, &v)
	if err == nil {
		return v, nil
	}
	var apiErr *client.APIError
	var refused *client.RefusedError
	if errors.As(err, &apiErr) || errors.As(err, &refused) || ctx.Err() != nil {
		return v, err
	}
	v = ha.AgentView{Status: ha.StatusUnreachable, Standbys: []string{}, Instances: []ha.InstanceView{}}
	known := map[string]config.Instance{}
	if cfg != nil {
		v.Agent = cfg.AgentName
		for _, in := range cfg.Instances {
			known[in.Address] = in
		}
	}
	answered := false
	for _, addr := range cl.Addresses() {
		var st ha.InstanceStatus
		iv := ha.InstanceView{Address: addr, Role: ha.RoleUnknown, Status: ha.StatusUnreachable}
		if in, ok := known[addr]; ok {
			iv.Name = in.Name
			if in.Witness {
				iv.Role = ha.RoleWitness
			}
		}
		if e := cl.DoAt(ctx, addr, http.MethodGet, api.PathInstance, nil, &st); e == nil {
			answered = true
			v.Agent = st.Agent
			if st.Epoch > v.Epoch {
				v.Epoch = st.Epoch
			}
			start := st.StartTime
			iv.Name, iv.Role, iv.Status, iv.Version, iv.Format = st.Name, st.Role, st.Status, st.Version, st.Format
			iv.StartTime, iv.LastApplied, iv.CanTakeOver = &start, st.LastApplied, st.CanTakeOver
			zero := 0.0
			iv.StatusAge = &zero // just asked
		}
		v.Instances = append(v.Instances, iv)
	}
	if answered {
		v.Status = ha.StatusStarting
		return v, nil
	}
	return v, err
}
