package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
)

// otherMount is the local endpoint as an instance on another host sees the
// same storage: through a mount of its own, with another device number and
// (on FUSE or SMB noserverino mounts) inode numbers of its own.
type otherMount struct{ *endpoint.Local }

func elsewhere(s checkpoint.Source) checkpoint.Source {
	s.Device += 17
	s.Inode += 100003
	return s
}

func (e otherMount) Stat(ctx context.Context, path string) (endpoint.Info, error) {
	info, err := e.Local.Stat(ctx, path)
	info.Source = elsewhere(info.Source)
	return info, err
}

func (e otherMount) OpenSource(ctx context.Context, path string) (endpoint.SourceFile, error) {
	sf, err := e.Local.OpenSource(ctx, path)
	if err != nil {
		return nil, err
	}
	return otherMountSource{sf}, nil
}

type otherMountSource struct{ endpoint.SourceFile }

func (s otherMountSource) Info() endpoint.Info {
	info := s.SourceFile.Info()
	info.Source = elsewhere(info.Source)
	return info
}

func (s otherMountSource) Stat() (endpoint.Info, error) {
	info, err := s.SourceFile.Stat()
	info.Source = elsewhere(info.Source)
	return info, err
}

// A failover to an instance that sees the storage through another mount
// resumes from the last checkpoint: the source is the same content version
// (size, mtime, ctime) though its device and inode numbers differ there.
func TestResumeOnAnotherMountFromTheCheckpoint(t *testing.T) {
	r := newRig(t)
	const size, interval = 6 << 20, 1 << 20
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(r.root, "in"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.root, "in", "big.bin"), data, 0o640); err != nil {
		t.Fatal(err)
	}
	limits := Limits{CheckpointBytes: interval, CheckpointTime: time.Hour, RecoveryTimeout: -1}
	log := &fakeLog{}
	m := r.manager(log, r.local)
	m.limits = limits
	id := r.submit(t, m, Request{Sources: []string{"in/big.bin"}, Destination: "out/big.bin", BandwidthLimit: 4 << 20})

	// The first active copies until it has recorded two checkpoints, then dies.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); runOnce(ctx, m, 1, id) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tr, _ := r.state.Get(id)
		if tr.Files[0].Checkpoint.Offset >= 2*interval {
			break
		}
		if time.Now().After(deadline) || Terminal(tr.State) {
			t.Fatalf("no second checkpoint: %s %q at %d", tr.State, tr.Reason, tr.Files[0].Checkpoint.Offset)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	before, _ := r.state.Get(id)
	at := before.Files[0].Checkpoint.Offset

	// The next active, on another host.
	m2 := r.manager(log, otherMount{r.local})
	m2.limits = limits
	m2.limits.CheckpointBytes = interval
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	runOnce(ctx2, m2, 2, id)
	tr, _ := r.state.Get(id)
	if tr.State != StateCompleted {
		t.Fatalf("after a failover to another mount: %s %q (file: %s %q), want completed", tr.State, tr.Reason, tr.Files[0].State, tr.Files[0].Reason)
	}
	got, err := os.ReadFile(filepath.Join(r.root, "out", "big.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("destination differs from the source (%v)", err)
	}
	if tr.BytesResent > interval {
		t.Fatalf("bytesResent %d after resuming at %d: more than one checkpoint interval (%d); the copy started again", tr.BytesResent, at, interval)
	}
}

// A source is deleted after a failover only if it is still the file whose
// bytes were delivered: the completion committed, the active died before
// it deleted the source, and a producer wrote a new file under its name.
func TestDeleteSourceAfterFailoverSparesANewFile(t *testing.T) {
	for _, small := range []bool{false, true} {
		name := map[bool]string{false: "large path", true: "small-file groups"}[small]
		t.Run(name, func(t *testing.T) {
			r := newRig(t)
			in := filepath.Join(r.root, "in")
			if err := os.MkdirAll(in, 0o750); err != nil {
				t.Fatal(err)
			}
			files := []string{"a.csv"}
			if small {
				files = []string{"a.csv", "b.csv", "c.csv"}
			}
			for _, f := range files {
				if err := os.WriteFile(filepath.Join(in, f), []byte("old order "+f), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			// The first active records the completions but "dies" before
			// it deletes: its endpoint refuses to remove sources.
			log := &fakeLog{}
			m := r.manager(log, noRemove{r.local})
			req := Request{Sources: []string{"in/"}, Destination: "out/", Recursive: true, Disposition: DispositionDelete}
			id := r.submit(t, m, req)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			runOnce(ctx, m, 1, id)
			cancel()
			tr, _ := r.state.Get(id)
			for i, f := range tr.Files {
				if f.State != StateCompleted || f.SourceDeleted {
					t.Fatalf("file %d: %s deleted=%v, want completed and not deleted", i, f.State, f.SourceDeleted)
				}
				if f.Delivered == (checkpoint.Source{}) {
					t.Fatalf("file %d: no identity recorded with its completion", i)
				}
			}
			// A producer writes a new a.csv (same size: only the identity tells).
			newer := filepath.Join(in, "tmp")
			if err := os.WriteFile(newer, []byte("new order a.csv"), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(newer, filepath.Join(in, "a.csv")); err != nil {
				t.Fatal(err)
			}
			m2 := r.manager(log, r.local)
			ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
			runOnce(ctx2, m2, 2, id)
			cancel2()
			if got, err := os.ReadFile(filepath.Join(in, "a.csv")); err != nil || string(got) != "new order a.csv" {
				t.Fatalf("the new, never transferred a.csv was deleted or changed: %q, %v", got, err)
			}
			tr, _ = r.state.Get(id)
			for i, f := range tr.Files {
				base := filepath.Base(f.Source)
				_, err := os.Stat(f.Source)
				if base == "a.csv" {
					if f.SourceDeleted {
						t.Fatalf("file %d recorded as deleted", i)
					}
					continue
				}
				if !f.SourceDeleted || !os.IsNotExist(err) {
					t.Fatalf("file %d (%s): deleted=%v, stat %v; want deleted", i, base, f.SourceDeleted, err)
				}
			}
		})
	}
}

type noRemove struct{ *endpoint.Local }

func (noRemove) RemoveSource(context.Context, string, checkpoint.Source) error {
	return os.ErrDeadlineExceeded // transient: as an active that dies here
}
