package ha

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ftagent/ftagent/pkg/replog"
)

type recordingSM struct {
	applied []string
}

func (r *recordingSM) Apply(kind string, epoch uint64, data []byte, index uint64) any {
	r.applied = append(r.applied, kind)
	return nil
}
func (r *recordingSM) Snapshot() (replog.Snapshot, error) {
	return jsonSnapshot{slices.Clone(r.applied)}, nil
}
func (r *recordingSM) Restore(dec *json.Decoder) (func(), error) {
	var applied []string
	if err := dec.Decode(&applied); err != nil {
		return nil, err
	}
	return func() { r.applied = applied }, nil
}

func mustEncode(t *testing.T, kind string, epoch uint64, data any) []byte {
	t.Helper()
	b, err := encodeCommand(kind, epoch, data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStateLeaseEpochsOnlyGrow(t *testing.T) {
	s := &state{}
	steps := []struct {
		epoch   uint64
		wantErr error
	}{
		{1, nil},
		{1, replog.ErrStaleEpoch}, // a racing proposer with the same epoch loses
		{3, nil},
		{2, replog.ErrStaleEpoch},
		{0, replog.ErrStaleEpoch},
		{4, nil},
	}
	for i, st := range steps {
		res := s.apply(uint64(i+1), mustEncode(t, KindLease, st.epoch, Lease{Epoch: st.epoch, Holder: "x"}))
		err, _ := res.(error)
		if !errors.Is(err, st.wantErr) && !(err == nil && st.wantErr == nil) {
			t.Fatalf("step %d epoch %d: got %v, want %v", i, st.epoch, err, st.wantErr)
		}
	}
	if got := s.currentLease().Epoch; got != 4 {
		t.Fatalf("epoch %d, want 4", got)
	}
}

func TestStateRefusesStaleCommandEpoch(t *testing.T) {
	sm := &recordingSM{}
	s := &state{app: sm}
	s.apply(1, mustEncode(t, KindLease, 5, Lease{Epoch: 5, Holder: "a"}))
	if res := s.apply(2, mustEncode(t, "test.write", 4, nil)); !errors.Is(res.(error), replog.ErrStaleEpoch) {
		t.Fatalf("stale command: got %v, want replog.ErrStaleEpoch", res)
	}
	if res := s.apply(3, mustEncode(t, "test.write", 5, nil)); res != nil {
		t.Fatalf("current-epoch command refused: %v", res)
	}
	if len(sm.applied) != 1 {
		t.Fatalf("state machine saw %v, want exactly the current-epoch command", sm.applied)
	}
}

func TestStateSnapshotRoundTrip(t *testing.T) {
	sm := &recordingSM{}
	s := &state{app: sm}
	s.apply(1, mustEncode(t, KindLease, 7, Lease{Epoch: 7, Holder: "ha2", Address: "127.0.0.1:7102"}))
	s.apply(2, mustEncode(t, "test.write", 7, nil))
	b, err := s.snapshotBytes()
	if err != nil {
		t.Fatal(err)
	}
	sm2 := &recordingSM{}
	s2 := &state{app: sm2}
	if err := s2.restoreBytes(b); err != nil {
		t.Fatal(err)
	}
	if s2.currentLease() != s.currentLease() {
		t.Fatalf("lease %+v, want %+v", s2.currentLease(), s.currentLease())
	}
	if len(sm2.applied) != 1 || sm2.applied[0] != "test.write" {
		t.Fatalf("state machine restored %v", sm2.applied)
	}
	if !strings.Contains(string(b), `"v":1,`) {
		t.Fatalf("snapshot %s does not carry format 1", b)
	}
}
