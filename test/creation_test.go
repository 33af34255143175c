package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/agentclient"
	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// TestKill9DuringLargeCreation: a request of tens of thousands of files is
// committed in several bounded entries; the active is killed (-9) while it
// is still committing them. The client's retry (pkg/client, as every
// command uses it, with the same transfer id) reaches the new active, which
// does not run the half-created transfer: it creates it anew, whole, and
// every file arrives once.
func TestKill9DuringLargeCreation(t *testing.T) {
	start := time.Now()
	t.Cleanup(func() { t.Logf("%v: cleaned up", time.Since(start)) })
	c, active := xferCluster(t)
	t.Logf("%v: cluster up", time.Since(start))
	// 30,000 files with long names (the paths of one entry are bounded to
	// 1 MiB): about fifteen entries, so the creation stays open long enough
	// to be seen.
	const dirs, perDir = 30, 1000
	long := strings.Repeat("x", 200)
	src := xferPath(c, "in/big")
	want := map[string]string{}
	for d := range dirs {
		dir := filepath.Join(src, fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		for f := range perDir {
			rel := fmt.Sprintf("d%02d/f%04d-%s", d, f, long)
			data := rel[:10] + "\n"
			if err := os.WriteFile(filepath.Join(src, rel), []byte(data), 0o640); err != nil {
				t.Fatal(err)
			}
			want[rel] = data
		}
	}
	t0 := time.Now()
	t.Logf("%v: %d files written", time.Since(start), len(want))
	dialer, err := c.TLS.Dialer("admin")
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, n := range c.Names {
		addrs = append(addrs, c.Addr[n])
	}
	// A client that keeps trying through a fail-over (a script would raise
	// clientConnectAttempts so): the defaults give up after two passes,
	// while the standbys still point to the killed active.
	policy := client.DefaultPolicy()
	policy.ConnectAttempts, policy.ConnectDelay = 40, 250*time.Millisecond
	cl, err := client.New(addrs, client.WithDialer(dialer.DialContext), client.WithPolicy(policy))
	if err != nil {
		t.Fatal(err)
	}
	id := transfer.NewID()
	type answer struct {
		v   transfer.View
		err error
	}
	done := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		ctx = client.WithRequestTimeout(ctx, agentclient.CreateTimeout)
		var v transfer.View
		err := cl.Do(ctx, http.MethodPost, api.PathTransfers+"?"+api.QueryFiles+"="+transfer.FilesNone,
			api.CreateTransferRequest{ID: id, Request: transfer.Request{Sources: []string{"in/big/"}, Destination: "out/big/", Recursive: true}}, &v)
		done <- answer{v, err}
	}()
	// The moment the active has committed the first entries but not the
	// last: the transfer is there, still being created.
	deadline := time.Now().Add(time.Minute)
	for {
		v, err := activeTransfer(c, active, id)
		if err == nil && v.Creating {
			break
		}
		if err == nil && !v.Creating {
			t.Fatalf("transfer %s was created whole before it was seen being created (%d files): the test missed its window", id, len(v.Files))
		}
		select {
		case a := <-done:
			t.Fatalf("the creation answered before it was seen being created: %+v %v", a.v, a.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("transfer %s never seen being created: %v", id, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("%v: transfer %s seen being created; killing %s", time.Since(t0), id, active)
	if err := c.Kill(active); err != nil {
		t.Fatal(err)
	}
	a := <-done
	t.Logf("%v: the client's request answered", time.Since(t0))
	if a.err != nil {
		t.Fatalf("the client's request did not survive the kill: %v", a.err)
	}
	if a.v.ID != id || a.v.Creating {
		t.Fatalf("answer %+v: want transfer %s, created", a.v, id)
	}
	next := xferNewActive(t, c, active)
	v := waitFilesNone(t, c, 3*time.Minute, id)
	if v.State != transfer.StateCompleted {
		t.Fatalf("transfer %s %s (%s)", id, v.State, v.Reason)
	}
	t.Logf("%v: transfer %s completed", time.Since(t0), id)
	// Every file once, with its bytes; nothing else in the destination.
	dst := xferPath(c, "out/big")
	n := 0
	err = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		n++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if w, ok := want[rel]; !ok || string(b) != w {
			return fmt.Errorf("%s: %q, want %q (listed %v)", rel, b, w, ok)
		}
		return nil
	})
	if err != nil || n != len(want) {
		t.Fatalf("destination: %d files of %d, %v", n, len(want), err)
	}
	xferNoParts(t, c)
	t.Logf("%v: destination checked", time.Since(t0))
	// The killed active never finished the creation; the new one created
	// the transfer whole (in parts: the retry's own open create, appends
	// and seal), whether it discarded the half-created one first or the
	// retry replaced it.
	if ev, ok := accepted(t, c, active, id); ok {
		t.Fatalf("%s, killed during the creation, logged it accepted: %v", active, ev)
	}
	ev, ok := accepted(t, c, next, id)
	if !ok || ev["kind"] != transfer.KindCreateOpen || ev["files"] != float64(len(want)) {
		t.Fatalf("%s's log: transfer %s accepted %v (%v), want accepted as %s with %d files", next, id, ok, ev, transfer.KindCreateOpen, len(want))
	}
}

// accepted returns the "transfer accepted" line of instance name's log for
// transfer id.
func accepted(t *testing.T, c *harness.Cluster, name, id string) (map[string]any, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && ev["message"] == "transfer accepted" && ev["transfer"] == id {
			return ev, true
		}
	}
	return nil, false
}

// activeTransfer asks instance name for transfer id without its files.
func activeTransfer(c *harness.Cluster, name, id string) (transfer.View, error) {
	var v transfer.View
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := c.GetJSON(ctx, name, api.PathTransfers+"/"+id+"?"+api.QueryFiles+"="+transfer.FilesNone, &v)
	return v, err
}

// waitFilesNone polls the active for transfer id, without its files, until
// it has ended.
func waitFilesNone(t *testing.T, c *harness.Cluster, timeout time.Duration, id string) transfer.View {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last transfer.View
	var lastErr error
	for time.Now().Before(deadline) {
		if av, _, err := c.Show(context.Background()); err == nil && av.Active != "" {
			v, err := activeTransfer(c, av.Active, id)
			if err == nil && transfer.Terminal(v.State) {
				return v
			}
			last, lastErr = v, err
		}
		time.Sleep(200 * time.Millisecond)
	}
	b, _ := json.Marshal(last)
	t.Fatalf("transfer %s did not end in %v: %s %v", id, timeout, b, lastErr)
	return last
}
