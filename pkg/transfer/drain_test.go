package transfer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
)

// drainRig runs a Manager as the active of epoch 1 over one 64 KiB file
// whose .part cannot be opened until openPart says so, and returns the
// manager and the transfer's id.
func drainRig(t *testing.T, openPart func(string) error) (*Manager, *rig, string) {
	t.Helper()
	r := newRig(t)
	src := filepath.Join(r.root, "in", "a.bin")
	if err := os.MkdirAll(filepath.Dir(src), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, make([]byte, 64<<10), 0o640); err != nil {
		t.Fatal(err)
	}
	m := r.manager(&fakeLog{}, &tracingEndpoint{Local: r.local, tr: r.tr, failOpenPart: openPart})
	id := r.submit(t, m, Request{Sources: []string{"in/a.bin"}, Destination: "out/a.bin"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx, ha.Lease{Epoch: 1, Holder: "me"}) }()
	t.Cleanup(func() { cancel(); <-done })
	return m, r, id
}

func waitState(t *testing.T, r *rig, id, state string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if tr, ok := r.state.Get(id); ok && tr.State == state {
			return
		}
		if time.Now().After(deadline) {
			tr, _ := r.state.Get(id)
			t.Fatalf("transfer %s is %s after 10s, want %s", id, tr.State, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A drain does not wait for a transfer that is recovering: with
// recoveryTimeout -1 its error may last for ever (issue 10, item 7).
func TestDrainDoesNotWaitForARecoveringTransfer(t *testing.T) {
	m, r, id := drainRig(t, func(string) error { return errors.New("I/O error: disk hiccup") })
	waitState(t, r, id, StateRecovering)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	began := time.Now()
	if err := m.Drain(ctx); err != nil {
		t.Fatalf("Drain with only a recovering transfer: %v after %v", err, time.Since(began))
	}
	if v := m.Draining(r.root); len(v) != 0 {
		t.Errorf("Draining lists %d transfers, want none", len(v))
	}
}

// A drain waits for a running transfer until it ends or ctx does, and
// Draining names it meanwhile.
func TestDrainWaitsForARunningTransfer(t *testing.T) {
	release := make(chan struct{})
	m, r, id := drainRig(t, func(string) error { <-release; return nil })
	waitState(t, r, id, StateRunning)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := m.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain with a running transfer: %v, want the deadline", err)
	}
	if v := m.Draining(r.root); len(v) != 1 || v[0].ID != id || v[0].Files != nil {
		t.Fatalf("Draining = %+v, want transfer %s without its files", v, id)
	}
	close(release)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := m.Drain(ctx2); err != nil {
		t.Fatalf("Drain once the transfer can finish: %v", err)
	}
	if tr, _ := r.state.Get(id); tr.State != StateCompleted {
		t.Fatalf("transfer %s: %s", tr.State, tr.Reason)
	}
}
