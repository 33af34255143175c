package agentclient

import (
	"context"
	"net/http"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/ha"
)

// Members returns the agent's raft group as its leader has it, reached
// through any instance. When no instance can point to a leader (an
// election, or too few voters up), it returns the group as the first
// instance that answers has it, with Leader empty, and the error of the
// leader's request (also when the leader is of a build without this
// request).
func Members(ctx context.Context, cl *client.Client) (ha.Membership, error) {
	var m ha.Membership
	err := cl.Do(ctx, http.MethodGet, api.PathMembers, nil, &m)
	if err == nil {
		return m, nil
	}
	if ctx.Err() != nil {
		return m, err
	}
	for _, addr := range cl.Addresses() {
		var own ha.Membership
		if e := cl.DoAt(ctx, addr, http.MethodGet, api.PathMembership, nil, &own); e == nil {
			own.Leader, own.LeaderAddress = "", ""
			return own, err
		}
	}
	return m, err
}

// RemoveMember asks the agent's raft leader, reached through any instance,
// to take the named instance out of the group.
func RemoveMember(ctx context.Context, cl *client.Client, name string) (ha.RemoveResult, error) {
	var res ha.RemoveResult
	err := cl.Do(ctx, http.MethodDelete, api.MemberPath(name), nil, &res)
	return res, err
}
