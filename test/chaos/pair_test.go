package chaos

import (
	"testing"
	"time"
)

// A cut between two groups of hosts drops their traffic with each other,
// and only it; healed, it is gone.
func TestCutBetween(t *testing.T) {
	if why := Capable(); why != "" {
		t.Skipf("cannot set up a bench: %s", why)
	}
	b, err := NewBench([]string{"a1", "a2", "b1"})
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("tear-down: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.checkCut(false, "a1", "a2", "b1"); err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	if err := b.checkCut(true, "a1", "a2", "b1"); err == nil {
		t.Fatal("before the cut, the check of a cut passed: the probe tells nothing")
	}
	if err := b.CutBetween([]string{"a1", "a2"}, []string{"b1"}); err != nil {
		t.Fatal(err)
	}
	if err := b.checkCut(true, "a1", "a2", "b1"); err != nil {
		t.Errorf("cut: %v", err)
	}
	if err := b.checkCut(true, "a2", "a1", "b1"); err != nil {
		t.Errorf("cut: %v", err)
	}
	if err := b.HealBetween([]string{"a1", "a2"}, []string{"b1"}); err != nil {
		t.Fatal(err)
	}
	if err := b.checkCut(false, "a1", "a2", "b1"); err != nil {
		t.Errorf("healed: %v", err)
	}
	if err := b.Reach("b1", "a1", time.Second); err != nil {
		t.Errorf("healed: %v", err)
	}
}
