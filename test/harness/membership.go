package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/ha"
)

// PropsFor writes, next to the cluster's agent.properties, a copy whose
// instances property lists only names (at their cluster addresses), and
// returns its path. Relative paths in it (dataDirectory, transferRoot)
// resolve as in the cluster's own file. It models a host whose file lists
// fewer instances, such as a single-instance agent before its migration.
func (c *Cluster) PropsFor(file string, names ...string) (string, error) {
	b, err := os.ReadFile(c.Props)
	if err != nil {
		return "", err
	}
	var entries []string
	for _, n := range names {
		addr, ok := c.Addr[n]
		if !ok {
			return "", fmt.Errorf("no instance %s in the cluster", n)
		}
		entries = append(entries, n+"@"+addr)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "instances=") {
			lines[i] = "instances=" + strings.Join(entries, ",")
		}
	}
	path := filepath.Join(c.Dir, file)
	return path, os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o640)
}

// StartWith starts instance name with the properties file props instead of
// the cluster's (extra arguments go to `ftagent start`).
func (c *Cluster) StartWith(props, name string, extra ...string) (*Proc, error) {
	args := append([]string{c.BinariesOf(name).Ftagent, "start", "--config", props, "--instance", name, "--log-format", "json"}, extra...)
	cmd := exec.Command(args[0], args[1:]...)
	if c.MountPerInstance {
		cmd = InstanceMount(c.Root, args)
	}
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	p, err := StartProcess(name, cmd, filepath.Join(c.Dir, name+".log"))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
	return p, nil
}

// InstanceStatus asks instance name for its own status (GET /v1/instance),
// directly over HTTP.
func (c *Cluster) InstanceStatus(ctx context.Context, name string) (ha.InstanceStatus, error) {
	var s ha.InstanceStatus
	return s, c.getJSON(ctx, name, api.PathInstance, &s)
}

// Membership asks instance name for its raft group (GET /v1/membership).
func (c *Cluster) Membership(ctx context.Context, name string) (ha.Membership, error) {
	var m ha.Membership
	return m, c.getJSON(ctx, name, api.PathMembership, &m)
}

// GetJSON asks instance name for path (GET) and decodes its JSON answer,
// directly over HTTP (TLS as the cluster's admin client), within a second.
func (c *Cluster) GetJSON(ctx context.Context, name, path string, out any) error {
	return c.getJSON(ctx, name, path, out)
}

func (c *Cluster) getJSON(ctx context.Context, name, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Addr[name]+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", name, path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// ExitCode is the exit status of a finished process, -1 if a signal ended
// it; it waits for the process to end.
func (p *Proc) ExitCode() int {
	<-p.done
	return p.Cmd.ProcessState.ExitCode()
}

// LeaseWatch polls every instance's own status and records which instance
// each reported lease epoch belongs to. Two holders for one epoch, or two
// instances reporting ACTIVE in one round, mean two groups (split brain).
type LeaseWatch struct {
	stop    chan struct{}
	done    chan struct{}
	holders map[uint64]string
	errs    []string
}

// WatchLeases starts a LeaseWatch over the cluster's instances.
func (c *Cluster) WatchLeases(every time.Duration) *LeaseWatch {
	w := &LeaseWatch{stop: make(chan struct{}), done: make(chan struct{}), holders: map[uint64]string{}}
	go func() {
		defer close(w.done)
		for {
			var actives []string
			for _, n := range c.Names {
				s, err := c.InstanceStatus(context.Background(), n)
				if err != nil {
					continue
				}
				if s.Epoch > 0 && s.LeaseHolder != "" {
					if h, ok := w.holders[s.Epoch]; ok && h != s.LeaseHolder {
						w.errs = append(w.errs, fmt.Sprintf("epoch %d held by %s and by %s (as %s reports)", s.Epoch, h, s.LeaseHolder, n))
					}
					w.holders[s.Epoch] = s.LeaseHolder
				}
				if s.Role == ha.RoleActive {
					actives = append(actives, fmt.Sprintf("%s (epoch %d)", n, s.Epoch))
				}
			}
			if len(actives) > 1 {
				w.errs = append(w.errs, "two instances active at once: "+strings.Join(actives, ", "))
			}
			select {
			case <-w.stop:
				return
			case <-time.After(every):
			}
		}
	}()
	return w
}

// Stop ends the watch and returns what it saw wrong (nil: one group, one
// holder per epoch) and the holder of each epoch.
func (w *LeaseWatch) Stop() (problems []string, holders map[uint64]string) {
	close(w.stop)
	<-w.done
	return w.errs, w.holders
}
