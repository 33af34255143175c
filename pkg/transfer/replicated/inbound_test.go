package replicated

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// The inbound record (inbound.go): what this agent receives from other
// agents, as Apply changes it from KindInbound entries and as a snapshot
// carries it.

const mib = 1 << 20

// Names of the inbound transfer most tests use.
const (
	inAgent = "paris"
	inID    = "t1"
	inPath  = "/r/out/a"
)

var inboundHashes sync.Map // seed → [][]byte

// hashesOf returns the hash states, as the receiver saves them, of a file
// whose i-th MiB is all the byte seed+i, after each of its first n MiB
// (index 0: none written).
func hashesOf(tb testing.TB, seed byte, n int) [][]byte {
	tb.Helper()
	key := fmt.Sprint(seed, "/", n)
	if v, ok := inboundHashes.Load(key); ok {
		return v.([][]byte)
	}
	h := checkpoint.NewHash()
	states := make([][]byte, 0, n+1)
	chunk := make([]byte, mib)
	for i := 0; ; i++ {
		st, err := checkpoint.SaveHash(h)
		if err != nil {
			tb.Fatal(err)
		}
		states = append(states, st)
		if i == n {
			break
		}
		for j := range chunk {
			chunk[j] = seed + byte(i)
		}
		h.Write(chunk)
	}
	inboundHashes.Store(key, states)
	return states
}

// inCkpt is a checkpoint of file path of transfer inID of inAgent, sent
// under epoch: a write from base to at of a file of size bytes, whose hash
// state is then hash.
func inCkpt(epoch uint64, path string, size, base, at int64, hash []byte) InboundCmd {
	return InboundCmd{Op: InboundCheckpoint, Agent: inAgent, ID: inID, SenderEpoch: epoch, Time: t0, Path: path,
		Size: size, Base: base, Checkpoint: checkpoint.Checkpoint{Offset: at, Hash: hash, Epoch: 1}}
}

// inOp is op on path of transfer inID of inAgent under epoch.
func inOp(op string, epoch uint64, path string) InboundCmd {
	return InboundCmd{Op: op, Agent: inAgent, ID: inID, SenderEpoch: epoch, Time: t0, Path: path}
}

func inCommit(epoch uint64, path, digest string) InboundCmd {
	c := inOp(InboundCommit, epoch, path)
	c.Digest = digest
	return c
}

// mustApply applies each of cmds, which must be accepted.
func (a *applier) mustApply(cmds ...InboundCmd) {
	a.t.Helper()
	for i, c := range cmds {
		if err := a.apply(KindInbound, 1, c); err != nil {
			a.t.Fatalf("inbound command %d (%s %s at %d from %d): %v", i, c.Op, c.Path, c.Checkpoint.Offset, c.Base, err)
		}
	}
}

// refused applies c, which must be refused with an error that is want,
// and must leave the state as it was (its snapshot's bytes).
func (a *applier) refused(c InboundCmd, want error) {
	a.t.Helper()
	before := mustSnapshot(a.t, a.s)
	allBefore, openBefore := a.s.InboundCount()
	err := a.apply(KindInbound, 1, c)
	if !errors.Is(err, want) {
		a.t.Fatalf("%s %s (sender epoch %d, base %d, at %d, size %d): %v, want %v", c.Op, c.Path, c.SenderEpoch, c.Base, c.Checkpoint.Offset, c.Size, err, want)
	}
	if after := mustSnapshot(a.t, a.s); !bytes.Equal(after, before) {
		a.t.Fatalf("refused %s changed the state:\n%s\nwas\n%s", c.Op, after, before)
	}
	if all, open := a.s.InboundCount(); all != allBefore || open != openBefore {
		a.t.Fatalf("refused %s: %d inbound transfers (%d open), was %d (%d)", c.Op, all, open, allBefore, openBefore)
	}
}

// fileAt is file path of transfer inID of inAgent, which must be there.
func (a *applier) fileAt(path string) (InboundFile, uint64) {
	a.t.Helper()
	f, epoch, ok := a.s.InboundFileAt(inAgent, inID, path)
	if !ok {
		a.t.Fatalf("%s of %s/%s is not recorded", path, inAgent, inID)
	}
	return f, epoch
}

func ckAt(at int64, hash []byte) checkpoint.Checkpoint {
	return checkpoint.Checkpoint{Offset: at, Hash: hash, Epoch: 1}
}

// TestInboundSenderFenced: once a sender's epoch is recorded, everything
// under an older one is refused as stale and changes nothing; a newer one
// raises the fence; InboundFileAt reports it.
func TestInboundSenderFenced(t *testing.T) {
	h := hashesOf(t, 1, 2)
	for _, c := range []struct {
		name string
		cmd  InboundCmd
	}{
		{"epoch", inOp(InboundEpoch, 2, "")},
		{"checkpoint resumed", inCkpt(2, inPath, 2*mib, mib, 2*mib, h[2])},
		{"checkpoint from 0", inCkpt(2, inPath, 2*mib, 0, mib, h[1])},
		{"checkpoint of another file", inCkpt(2, "/r/out/b", 2*mib, 0, mib, h[1])},
		{"commit", inCommit(2, inPath, "d")},
		{"remove", inOp(InboundRemove, 2, inPath)},
		{"end", inOp(InboundEnd, 2, "")},
		{"epoch 0", inOp(InboundEpoch, 0, "")},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := &applier{t: t, s: NewState()}
			a.mustApply(inCkpt(3, inPath, 2*mib, 0, mib, h[1]))
			a.refused(c.cmd, ErrStaleSender)
			if errors.Is(a.apply(KindInbound, 1, c.cmd), ErrInboundState) {
				t.Fatal("a stale sender's change is also an inbound state error")
			}
			f, epoch := a.fileAt(inPath)
			if epoch != 3 || !reflect.DeepEqual(f, InboundFile{Size: 2 * mib, Last: ckAt(mib, h[1])}) {
				t.Fatalf("after a stale %s: epoch %d, file %+v", c.cmd.Op, epoch, f)
			}
		})
	}

	a := &applier{t: t, s: NewState()}
	if _, epoch, ok := a.s.InboundFileAt(inAgent, inID, ""); ok || epoch != 0 {
		t.Fatalf("unknown transfer: epoch %d, ok %v", epoch, ok)
	}
	a.mustApply(inCkpt(3, inPath, 2*mib, 0, mib, h[1]))
	if _, epoch, ok := a.s.InboundFileAt(inAgent, inID, "/r/out/other"); ok || epoch != 3 {
		t.Fatalf("unknown file of a known transfer: epoch %d, ok %v", epoch, ok)
	}
	if _, epoch, ok := a.s.InboundFileAt(inAgent, "t2", inPath); ok || epoch != 0 {
		t.Fatalf("another transfer of the agent: epoch %d, ok %v", epoch, ok)
	}
	if _, epoch, ok := a.s.InboundFileAt("lyon", inID, inPath); ok || epoch != 0 {
		t.Fatalf("the same transfer id of another agent: epoch %d, ok %v", epoch, ok)
	}
	// The same epoch goes on; a newer one raises the fence, alone or with
	// a write.
	a.mustApply(inOp(InboundEpoch, 3, ""))
	a.mustApply(inOp(InboundEpoch, 5, ""))
	if f, epoch := a.fileAt(inPath); epoch != 5 || f.Last.Offset != mib {
		t.Fatalf("after epoch 5: epoch %d, file %+v", epoch, f)
	}
	a.refused(inCkpt(4, inPath, 2*mib, mib, 2*mib, h[2]), ErrStaleSender)
	a.mustApply(inCkpt(7, inPath, 2*mib, mib, 2*mib, h[2]))
	if f, epoch := a.fileAt(inPath); epoch != 7 || f.Last.Offset != 2*mib || f.Prev.Offset != mib {
		t.Fatalf("after a checkpoint under epoch 7: epoch %d, file %+v", epoch, f)
	}
	a.refused(inCommit(5, inPath, "d"), ErrStaleSender)
	// Fences are per transfer: another transfer of the same sender, or
	// the same id of another sender, starts at any epoch.
	other := inCkpt(1, inPath, 2*mib, 0, mib, h[1])
	other.ID = "t2"
	a.mustApply(other)
	other = inCkpt(1, inPath, 2*mib, 0, mib, h[1])
	other.Agent = "lyon"
	a.mustApply(other)
	if _, epoch := a.fileAt(inPath); epoch != 7 {
		t.Fatalf("another transfer's epoch moved this one's to %d", epoch)
	}
	if tr, ok := a.s.Inbound("lyon", inID); !ok || tr.SenderEpoch != 1 || tr.Agent != "lyon" || tr.ID != inID {
		t.Fatalf("lyon's transfer: %+v %v", tr, ok)
	}
}

// TestInboundCheckpointChain: a checkpoint keeps the one it continues as
// Prev; a write may begin at 0, Prev or Last, and nowhere else; it moves
// the offset on, within the file, with a hash state; only an empty file's
// write ends where it began.
func TestInboundCheckpointChain(t *testing.T) {
	h := hashesOf(t, 1, 3)
	h2 := hashesOf(t, 101, 3) // other bytes written again
	const size = 3 * mib
	chain := func(t *testing.T) *applier {
		a := &applier{t: t, s: NewState()}
		a.mustApply(inCkpt(1, inPath, size, 0, mib, h[1]))
		if f, _ := a.fileAt(inPath); !reflect.DeepEqual(f, InboundFile{Size: size, Last: ckAt(mib, h[1])}) {
			t.Fatalf("after 0→1M: %+v", f)
		}
		a.mustApply(inCkpt(1, inPath, size, mib, 2*mib, h[2]))
		if f, _ := a.fileAt(inPath); !reflect.DeepEqual(f, InboundFile{Size: size, Prev: ckAt(mib, h[1]), Last: ckAt(2*mib, h[2])}) {
			t.Fatalf("after 0→1M→2M: %+v", f)
		}
		return a
	}
	chain(t)

	for _, c := range []struct {
		name string
		cmd  InboundCmd
		want InboundFile
	}{
		{"resume at Prev", inCkpt(1, inPath, size, mib, 2*mib, h2[2]),
			InboundFile{Size: size, Prev: ckAt(mib, h[1]), Last: ckAt(2*mib, h2[2])}},
		{"resume at Prev, shorter", inCkpt(1, inPath, size, mib, mib+1, h2[1]),
			InboundFile{Size: size, Prev: ckAt(mib, h[1]), Last: ckAt(mib+1, h2[1])}},
		{"resume at Prev to the end", inCkpt(1, inPath, size, mib, size, h2[3]),
			InboundFile{Size: size, Prev: ckAt(mib, h[1]), Last: ckAt(size, h2[3])}},
		{"resume at Last", inCkpt(1, inPath, size, 2*mib, size, h[3]),
			InboundFile{Size: size, Prev: ckAt(2*mib, h[2]), Last: ckAt(size, h[3])}},
		{"again from 0", inCkpt(1, inPath, size, 0, mib, h2[1]),
			InboundFile{Size: size, Last: ckAt(mib, h2[1])}},
		{"under a newer epoch", inCkpt(9, inPath, size, 2*mib, size, h[3]),
			InboundFile{Size: size, Prev: ckAt(2*mib, h[2]), Last: ckAt(size, h[3])}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := chain(t)
			a.mustApply(c.cmd)
			if f, _ := a.fileAt(inPath); !reflect.DeepEqual(f, c.want) {
				t.Fatalf("%+v\nwant %+v", f, c.want)
			}
		})
	}

	for _, c := range []struct {
		name string
		cmd  InboundCmd
	}{
		{"base not recorded", inCkpt(1, inPath, size, mib/2, 2*mib, h[2])},
		{"base not recorded, ends at Last", inCkpt(1, inPath, size, mib+1, 2*mib, h[2])},
		{"base beyond Last", inCkpt(1, inPath, size, size, size, h[3])},
		{"base negative", inCkpt(1, inPath, size, -mib, mib, h[1])},
		{"beyond the size", inCkpt(1, inPath, size, 2*mib, size+1, h[3])},
		{"beyond the size from 0", inCkpt(1, inPath, size, 0, size+1, h[3])},
		{"not beyond Last", inCkpt(1, inPath, size, 2*mib, 2*mib, h[2])},
		{"not beyond Prev", inCkpt(1, inPath, size, mib, mib, h[1])},
		{"not beyond 0", inCkpt(1, inPath, size, 0, 0, h[0])},
		{"backwards", inCkpt(1, inPath, size, 2*mib, mib, h[1])},
		{"negative", inCkpt(1, inPath, size, 0, -1, h[1])},
		{"no hash", inCkpt(1, inPath, size, 2*mib, size, nil)},
		{"empty hash", inCkpt(1, inPath, size, 2*mib, size, []byte{})},
		{"size smaller than base", inCkpt(1, inPath, mib, 2*mib, size, h[3])},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := chain(t)
			a.refused(c.cmd, ErrInboundState)
			if errors.Is(a.apply(KindInbound, 1, c.cmd), ErrStaleSender) {
				t.Fatal("refused as stale")
			}
		})
	}

	// A file never written: its first write begins at 0.
	for _, c := range []struct {
		name string
		cmd  InboundCmd
		ok   bool
	}{
		{"from 0", inCkpt(1, inPath, size, 0, mib, h[1]), true},
		{"the whole file", inCkpt(1, inPath, size, 0, size, h[3]), true},
		{"from elsewhere", inCkpt(1, inPath, size, mib, 2*mib, h[2]), false},
		{"empty file", inCkpt(1, inPath, 0, 0, 0, h[0]), true},
		{"empty file without a hash", inCkpt(1, inPath, 0, 0, 0, nil), false},
		{"empty file, offset 1", inCkpt(1, inPath, 0, 0, 1, h[0]), false},
		{"negative size", inCkpt(1, inPath, -1, 0, 0, h[0]), false},
		{"no size", inCkpt(1, inPath, 0, 0, mib, h[1]), false},
	} {
		t.Run("new file/"+c.name, func(t *testing.T) {
			a := &applier{t: t, s: NewState()}
			if !c.ok {
				a.refused(c.cmd, ErrInboundState)
				if _, _, ok := a.s.InboundFileAt(inAgent, inID, inPath); ok {
					t.Fatal("a refused first write recorded the file")
				}
				return
			}
			a.mustApply(c.cmd)
			want := InboundFile{Size: c.cmd.Size, Last: c.cmd.Checkpoint}
			if f, epoch := a.fileAt(inPath); epoch != 1 || !reflect.DeepEqual(f, want) {
				t.Fatalf("%+v (epoch %d), want %+v", f, epoch, want)
			}
		})
	}

	// An empty file may be written again (a sender that died before it
	// recorded it), and committed.
	a := &applier{t: t, s: NewState()}
	a.mustApply(inCkpt(1, inPath, 0, 0, 0, h[0]), inCkpt(2, inPath, 0, 0, 0, h[0]), inCommit(2, inPath, "e3b0"))
	if f, _ := a.fileAt(inPath); !f.Committed || f.Digest != "e3b0" || f.Size != 0 || f.Last.Offset != 0 {
		t.Fatalf("empty file committed: %+v", f)
	}
	if p, ok := (&InboundFile{Size: size, Prev: ckAt(mib, h[1]), Last: ckAt(2*mib, h[2])}).At(0); !ok || !reflect.DeepEqual(p, checkpoint.Checkpoint{}) {
		t.Fatalf("At(0): %+v %v", p, ok)
	}
}

// TestInboundCommit: a file is committed once all of it is durable, with
// its digest; the same commit again is accepted and changes nothing, a
// commit with another digest is refused, as is any write or removal of a
// committed file.
func TestInboundCommit(t *testing.T) {
	h := hashesOf(t, 1, 2)
	const size = 2 * mib
	const digest = "1111111111111111111111111111111111111111111111111111111111111111"
	a := &applier{t: t, s: NewState()}
	a.refused(inCommit(1, inPath, digest), ErrInboundState) // not a transfer received here
	a.mustApply(inCkpt(1, inPath, size, 0, mib, h[1]))
	a.refused(inCommit(1, inPath, digest), ErrInboundState)     // half of it durable
	a.refused(inCommit(1, "/r/out/b", digest), ErrInboundState) // never written
	a.mustApply(inCkpt(1, inPath, size, mib, size, h[2]))
	c := inCommit(1, inPath, digest)
	c.Time = t0.Add(time.Minute)
	a.mustApply(c)
	f, _ := a.fileAt(inPath)
	if want := (InboundFile{Size: size, Last: checkpoint.Checkpoint{Offset: size}, Committed: true, Digest: digest}); !reflect.DeepEqual(f, want) {
		t.Fatalf("committed: %+v\nwant %+v", f, want)
	}
	if tr, _ := a.s.Inbound(inAgent, inID); !tr.Updated.Equal(c.Time) || tr.Ended {
		t.Fatalf("after the commit: %+v", tr)
	}
	committed := mustSnapshot(t, a.s)

	// Replayed (a sender that failed over before it heard the answer),
	// later: accepted, nothing changes, not even the time.
	replay := inCommit(1, inPath, digest)
	replay.Time = t0.Add(time.Hour)
	if err := a.apply(KindInbound, 1, replay); err != nil {
		t.Fatalf("commit replayed: %v", err)
	}
	if b := mustSnapshot(t, a.s); !bytes.Equal(b, committed) {
		t.Fatalf("a replayed commit changed the state:\n%s\nwas\n%s", b, committed)
	}
	for _, c := range []struct {
		name string
		cmd  InboundCmd
	}{
		{"another digest", inCommit(1, inPath, strings.Repeat("2", 64))},
		{"no digest", inCommit(1, inPath, "")},
		{"checkpoint from 0", inCkpt(1, inPath, size, 0, mib, h[1])},
		{"checkpoint from Last", inCkpt(1, inPath, 3*mib, size, 3*mib, h[2])},
		{"checkpoint from the old Prev", inCkpt(1, inPath, size, mib, size, h[2])},
		{"checkpoint of an empty file", inCkpt(1, inPath, 0, 0, 0, h[0])},
		{"checkpoint under a newer epoch", inCkpt(4, inPath, size, 0, mib, h[1])},
		{"remove", inOp(InboundRemove, 1, inPath)},
		{"remove under a newer epoch", inOp(InboundRemove, 4, inPath)},
	} {
		t.Run(c.name, func(t *testing.T) {
			(&applier{t: t, s: a.s, index: a.index}).refused(c.cmd, ErrInboundState)
		})
	}
	if f2, _ := a.fileAt(inPath); !reflect.DeepEqual(f2, f) {
		t.Fatalf("after refusals: %+v", f2)
	}

	// Another file of the transfer is removed (forgotten) before it is
	// committed, and written again from 0 only.
	a.mustApply(inCkpt(1, "/r/out/b", size, 0, mib, h[1]))
	a.mustApply(inOp(InboundRemove, 1, "/r/out/b"))
	if _, _, ok := a.s.InboundFileAt(inAgent, inID, "/r/out/b"); ok {
		t.Fatal("a removed file is still recorded")
	}
	a.refused(inCkpt(1, "/r/out/b", size, mib, size, h[2]), ErrInboundState)
	a.mustApply(inOp(InboundRemove, 1, "/r/out/never")) // nothing to forget
	a.mustApply(inCkpt(1, "/r/out/b", size, 0, mib, h[1]))
	if f, _ := a.fileAt(inPath); !f.Committed {
		t.Fatal("the committed file was lost")
	}
}

// TestInboundEndAndPrune: an ended transfer forgets its files but keeps
// its sender's epoch, and refuses everything but another end; prune
// forgets the ended transfers it names, and only them.
func TestInboundEndAndPrune(t *testing.T) {
	h := hashesOf(t, 1, 2)
	base := func(t *testing.T) *applier {
		a := &applier{t: t, s: NewState()}
		a.mustApply(
			inCkpt(4, inPath, 2*mib, 0, mib, h[1]),
			inCkpt(4, "/r/out/b", mib, 0, mib, h[1]), inCommit(4, "/r/out/b", "d"),
		)
		end := inOp(InboundEnd, 4, "")
		end.Time = t0.Add(time.Minute)
		a.mustApply(end)
		return a
	}
	a := base(t)
	tr, ok := a.s.Inbound(inAgent, inID)
	if !ok || !tr.Ended || len(tr.Files) != 0 || tr.SenderEpoch != 4 || !tr.Updated.Equal(t0.Add(time.Minute)) {
		t.Fatalf("ended: %+v %v", tr, ok)
	}
	for _, p := range []string{inPath, "/r/out/b"} {
		if _, epoch, ok := a.s.InboundFileAt(inAgent, inID, p); ok || epoch != 4 {
			t.Fatalf("%s of an ended transfer: epoch %d, ok %v", p, epoch, ok)
		}
	}
	if all, open := a.s.InboundCount(); all != 1 || open != 0 {
		t.Fatalf("count %d, %d open", all, open)
	}

	for _, c := range []struct {
		name string
		cmd  InboundCmd
		want error
	}{
		{"checkpoint", inCkpt(4, inPath, 2*mib, 0, mib, h[1]), ErrInboundState},
		{"checkpoint resumed", inCkpt(4, inPath, 2*mib, mib, 2*mib, h[2]), ErrInboundState},
		{"checkpoint under a newer epoch", inCkpt(5, inPath, 2*mib, 0, mib, h[1]), ErrInboundState},
		{"epoch", inOp(InboundEpoch, 4, ""), ErrInboundState},
		{"newer epoch", inOp(InboundEpoch, 5, ""), ErrInboundState},
		{"commit", inCommit(4, "/r/out/b", "d"), ErrInboundState},
		{"remove", inOp(InboundRemove, 4, inPath), ErrInboundState},
		{"bogus op", inOp("rename", 4, inPath), ErrInboundState},
		{"stale checkpoint", inCkpt(3, inPath, 2*mib, 0, mib, h[1]), ErrStaleSender},
		{"stale epoch", inOp(InboundEpoch, 3, ""), ErrStaleSender},
		{"stale end", inOp(InboundEnd, 3, ""), ErrStaleSender},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := base(t)
			a.refused(c.cmd, c.want)
		})
	}

	// Another end (a sender that failed over before it heard the answer)
	// is accepted.
	a.mustApply(inOp(InboundEnd, 4, ""), inOp(InboundEnd, 6, ""))
	if tr, _ := a.s.Inbound(inAgent, inID); !tr.Ended || tr.SenderEpoch != 6 || len(tr.Files) != 0 {
		t.Fatalf("ended again: %+v", tr)
	}
	a.refused(inOp(InboundEnd, 5, ""), ErrStaleSender)

	// Prune: t1 ended (this one), t2 open, t3 ended later; lyon's t1
	// ended, not named.
	ended := func(agent, id string, epoch uint64, at time.Time) {
		c := inOp(InboundEpoch, epoch, "")
		c.Agent, c.ID = agent, id
		e := inOp(InboundEnd, epoch, "")
		e.Agent, e.ID, e.Time = agent, id, at
		a.mustApply(c, e)
	}
	open := inCkpt(1, inPath, 2*mib, 0, mib, h[1])
	open.ID = "t2"
	a.mustApply(open)
	ended(inAgent, "t3", 2, t0.Add(time.Hour))
	ended("lyon", inID, 2, t0)
	if all, open := a.s.InboundCount(); all != 4 || open != 1 {
		t.Fatalf("count %d, %d open", all, open)
	}
	k1, k2, k3, kl := InboundKey(inAgent, inID), InboundKey(inAgent, "t2"), InboundKey(inAgent, "t3"), InboundKey("lyon", inID)
	if got := a.s.InboundEnded(t0.Add(2*time.Hour), 10); !reflect.DeepEqual(got, []string{kl, k1, k3}) {
		t.Fatalf("ended before +2h: %q", got)
	}
	if got := a.s.InboundEnded(t0.Add(2*time.Hour), 2); !reflect.DeepEqual(got, []string{kl, k1}) {
		t.Fatalf("ended before +2h, at most 2: %q", got)
	}
	if got := a.s.InboundEnded(t0.Add(time.Hour), 10); !reflect.DeepEqual(got, []string{kl, k1}) {
		t.Fatalf("ended before +1h: %q", got)
	}
	if got := a.s.InboundEnded(t0, 10); len(got) != 0 {
		t.Fatalf("ended before t0: %q", got)
	}
	prune := InboundCmd{Op: InboundPrune, Keys: []string{k1, k2, k3, InboundKey("nobody", "x")}}
	a.mustApply(prune)
	if _, ok := a.s.Inbound(inAgent, inID); ok {
		t.Fatal("t1 ended and named, not pruned")
	}
	if _, ok := a.s.Inbound(inAgent, "t3"); ok {
		t.Fatal("t3 ended and named, not pruned")
	}
	if tr, ok := a.s.Inbound(inAgent, "t2"); !ok || tr.Ended || len(tr.Files) != 1 {
		t.Fatalf("t2 open and named: %+v %v", tr, ok)
	}
	if tr, ok := a.s.Inbound("lyon", inID); !ok || !tr.Ended {
		t.Fatalf("lyon's t1 not named: %+v %v", tr, ok)
	}
	if all, open := a.s.InboundCount(); all != 2 || open != 1 {
		t.Fatalf("count after prune %d, %d open", all, open)
	}
	a.mustApply(prune) // again: nothing to do
	a.mustApply(InboundCmd{Op: InboundPrune, Keys: []string{kl}})
	if all, open := a.s.InboundCount(); all != 1 || open != 1 {
		t.Fatalf("count after the last prune %d, %d open", all, open)
	}
}

// TestInboundRefusesMalformed: an unknown operation, a change to a
// transfer not received here (but its first epoch or checkpoint), or one
// that names no agent or id is refused and changes nothing.
func TestInboundRefusesMalformed(t *testing.T) {
	h := hashesOf(t, 1, 1)
	known := func(t *testing.T) *applier {
		a := &applier{t: t, s: NewState()}
		a.mustApply(inCkpt(2, inPath, 2*mib, 0, mib, h[1]))
		return a
	}
	noAgent := func(c InboundCmd) InboundCmd { c.Agent = ""; return c }
	noID := func(c InboundCmd) InboundCmd { c.ID = ""; return c }
	other := func(c InboundCmd) InboundCmd { c.ID = "t9"; return c }
	for _, c := range []struct {
		name string
		cmd  InboundCmd
	}{
		{"unknown op", inOp("rename", 2, inPath)},
		{"no op", inOp("", 2, inPath)},
		{"op in capitals", inOp("CHECKPOINT", 2, inPath)},
		{"unknown op, unknown transfer", other(inOp("rename", 2, inPath))},
		{"commit, unknown transfer", other(inCommit(2, inPath, "d"))},
		{"remove, unknown transfer", other(inOp(InboundRemove, 2, inPath))},
		{"end, unknown transfer", other(inOp(InboundEnd, 2, ""))},
		{"epoch, no agent", noAgent(inOp(InboundEpoch, 2, ""))},
		{"epoch, no id", noID(inOp(InboundEpoch, 2, ""))},
		{"checkpoint, no agent", noAgent(inCkpt(2, inPath, 2*mib, 0, mib, h[1]))},
		{"checkpoint, no id", noID(inCkpt(2, inPath, 2*mib, 0, mib, h[1]))},
		{"commit, no agent", noAgent(inCommit(2, inPath, "d"))},
		{"end, no id", noID(inOp(InboundEnd, 2, ""))},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := known(t)
			a.refused(c.cmd, ErrInboundState)
			if _, ok := a.s.Inbound(inAgent, "t9"); ok {
				t.Fatal("a refused change recorded a transfer")
			}
		})
	}

	// An epoch or a checkpoint makes a transfer known.
	a := &applier{t: t, s: NewState()}
	a.mustApply(inOp(InboundEpoch, 2, ""))
	if tr, ok := a.s.Inbound(inAgent, inID); !ok || tr.SenderEpoch != 2 || tr.Files == nil || len(tr.Files) != 0 || tr.Ended {
		t.Fatalf("after an epoch: %+v %v", tr, ok)
	}
	// Entries that do not decode.
	for _, data := range []string{`{`, `[]`, `{"op":"checkpoint","agent":"paris","id":"t1","senderEpoch":-1}`, `{"op":7}`} {
		before := mustSnapshot(t, a.s)
		if res := a.s.Apply(KindInbound, 1, []byte(data), 100); res == nil {
			t.Fatalf("%s: applied", data)
		}
		if b := mustSnapshot(t, a.s); !bytes.Equal(b, before) {
			t.Fatalf("%s changed the state", data)
		}
	}
}

// inboundState is snapshotState (transfers of all kinds) with inbound
// transfers of every shape: files in flight with Prev and Last, committed,
// empty and committed, received whole (one named by bytes that are not
// UTF-8); one with no file; ended ones; another sender's.
func inboundState(t *testing.T) *applier {
	h := hashesOf(t, 1, 3)
	a := &applier{t: t, s: snapshotState(t), index: 1000}
	a.mustApply(
		inCkpt(2, inPath, 3*mib, 0, mib, h[1]), inCkpt(2, inPath, 3*mib, mib, 2*mib, h[2]),
		inCkpt(2, "/r/out/b", mib, 0, mib, h[1]), inCommit(3, "/r/out/b", "dd"),
		inCkpt(3, "/r/out/empty", 0, 0, 0, h[0]), inCommit(3, "/r/out/empty", "e3"),
		inCkpt(3, "/r/out/<&> \"q\"", 2*mib, 0, mib, h[1]),
		inCkpt(3, "/r/out/é", 2*mib, 0, mib, h[1]),
		inFiles(3, InboundDone{Path: "/r/out/small", Size: 3, Digest: "sm"}, InboundDone{Path: "/r/out/small\xff", Size: 4, Digest: "sm2"}),
	)
	bare := inOp(InboundEpoch, 8, "")
	bare.ID = "bare"
	ended := inCkpt(1, inPath, mib, 0, mib, h[1])
	ended.ID = "gone"
	end := inOp(InboundEnd, 2, "")
	end.ID, end.Time = "gone", t0.Add(time.Minute)
	lyon := inCkpt(1, inPath, 3*mib, 0, 3*mib, h[3])
	lyon.Agent, lyon.Time = "lyon", t0.Add(time.Second)
	a.mustApply(bare, ended, end, lyon)
	return a
}

// inboundKeys are the transfers inboundState receives, and one it does
// not.
var inboundKeys = [][2]string{{inAgent, inID}, {inAgent, "bare"}, {inAgent, "gone"}, {"lyon", inID}, {"nobody", "x"}}

// TestInboundSnapshotRoundTrip: the inbound transfers go through a
// snapshot whole, after the transfers; a state that receives nothing
// writes the snapshot earlier builds wrote; a malformed inbound record is
// refused.
func TestInboundSnapshotRoundTrip(t *testing.T) {
	a := inboundState(t)
	b := mustSnapshot(t, a.s)
	if !bytes.Contains(b, []byte(`],"inbound":[{"agent":"lyon",`)) || !bytes.HasSuffix(b, []byte("}]}")) {
		t.Fatalf("inbound not after the transfers, in key order: …%s", b[max(0, len(b)-2000):])
	}
	s2 := NewState()
	if err := restoreBytes(s2, b); err != nil {
		t.Fatal(err)
	}
	for _, k := range inboundKeys {
		want, wok := a.s.Inbound(k[0], k[1])
		got, gok := s2.Inbound(k[0], k[1])
		if wok != gok || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s/%s restored: %+v (%v)\nwant %+v (%v)", k[0], k[1], got, gok, want, wok)
		}
	}
	if tr, _ := s2.Inbound(inAgent, inID); len(tr.Files) != 7 || tr.Files[inPath].Prev.Offset != mib || len(tr.Files[inPath].Prev.Hash) == 0 {
		t.Fatalf("restored: %+v", tr)
	}
	wa, wo := a.s.InboundCount()
	if ga, go_ := s2.InboundCount(); ga != wa || go_ != wo || wa != 4 || wo != 3 {
		t.Fatalf("restored count %d (%d open), want %d (%d open), 4 (3)", ga, go_, wa, wo)
	}
	if got, want := s2.InboundEnded(t0.Add(time.Hour), 10), a.s.InboundEnded(t0.Add(time.Hour), 10); !reflect.DeepEqual(got, want) || len(got) != 1 {
		t.Fatalf("restored ended %q, want %q", got, want)
	}
	if b2 := mustSnapshot(t, s2); !bytes.Equal(b2, b) {
		t.Fatalf("the restored state's snapshot differs:\n%s\nwas\n%s", b2, b)
	}
	// The transfers are those restored without the inbound record.
	var transfersOnly map[string]json.RawMessage
	if err := json.Unmarshal(b, &transfersOnly); err != nil {
		t.Fatal(err)
	}
	old, err := oldSnapshotJSON(a.s)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(append([]byte(`{"transfers":`), transfersOnly["transfers"]...), '}'); !bytes.Equal(old, want) {
		t.Fatal("the transfers of a snapshot with inbound transfers are not those earlier builds wrote")
	}

	// Both go on alike: a resume at Prev, a commit, an end, a prune.
	h := hashesOf(t, 7, 3)
	a2 := &applier{t: t, s: s2, index: a.index}
	for _, c := range []InboundCmd{
		inCkpt(3, inPath, 3*mib, mib, 3*mib, h[3]), inCommit(3, inPath, "ff"),
		inOp(InboundEnd, 3, ""), {Op: InboundPrune, Keys: []string{InboundKey(inAgent, "gone")}},
	} {
		a.mustApply(c)
		a2.mustApply(c)
	}
	if b1, b2 := mustSnapshot(t, a.s), mustSnapshot(t, s2); !bytes.Equal(b1, b2) {
		t.Fatalf("after the same entries:\n%s\n%s", b1, b2)
	}
	a.refused(inCkpt(1, inPath, mib, 0, mib, h[1]), ErrStaleSender)
	a2.refused(inCkpt(1, inPath, mib, 0, mib, h[1]), ErrStaleSender)

	// A state that receives nothing, or no longer does, writes what
	// earlier builds wrote; restoring it leaves nothing received.
	for _, c := range []struct {
		name string
		s    *State
	}{
		{"new", NewState()},
		{"transfers only", snapshotState(t)},
		{"all pruned", func() *State {
			a := &applier{t: t, s: snapshotState(t), index: 1000}
			a.mustApply(inOp(InboundEpoch, 1, ""), inOp(InboundEnd, 1, ""),
				InboundCmd{Op: InboundPrune, Keys: []string{InboundKey(inAgent, inID)}})
			return a.s
		}()},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := mustSnapshot(t, c.s)
			old, err := oldSnapshotJSON(c.s)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, old) || bytes.Contains(b, []byte(`"inbound"`)) {
				t.Fatalf("snapshot\n%s\nnot the earlier\n%s", b, old)
			}
			s := inboundState(t).s // restored over inbound transfers
			if err := restoreBytes(s, b); err != nil {
				t.Fatal(err)
			}
			if all, _ := s.InboundCount(); all != 0 {
				t.Fatalf("%d inbound transfers after restoring a snapshot without any", all)
			}
			if _, ok := s.Inbound(inAgent, inID); ok {
				t.Fatal("an inbound transfer survived the restore")
			}
			// And receives again.
			(&applier{t: t, s: s}).mustApply(inOp(InboundEpoch, 1, ""))
		})
	}

	for _, c := range []struct {
		name string
		json string
		ok   bool
	}{
		{"null record", `{"transfers":[],"inbound":[null]}`, false},
		{"null record after one", `{"transfers":[],"inbound":[{"agent":"a","id":"x"},null]}`, false},
		{"no agent", `{"transfers":[],"inbound":[{"id":"x","senderEpoch":1}]}`, false},
		{"empty agent", `{"transfers":[],"inbound":[{"agent":"","id":"x","senderEpoch":1}]}`, false},
		{"no id", `{"transfers":[],"inbound":[{"agent":"a","senderEpoch":1}]}`, false},
		{"null file", `{"transfers":[],"inbound":[{"agent":"a","id":"x","files":{"/r/out/a":null}}]}`, false},
		{"null file among others", `{"transfers":[],"inbound":[{"agent":"a","id":"x","files":{"/r/out/a":{"size":1},"/r/out/b":null}}]}`, false},
		{"not a list", `{"transfers":[],"inbound":{"agent":"a","id":"x"}}`, false},
		{"a string", `{"transfers":[],"inbound":"a/x"}`, false},
		{"bad epoch", `{"transfers":[],"inbound":[{"agent":"a","id":"x","senderEpoch":-1}]}`, false},
		{"inbound first", `{"inbound":[{"agent":"a","id":"x","senderEpoch":1}],"transfers":[]}`, true},
		{"no transfers", `{"inbound":[{"agent":"a","id":"x","senderEpoch":1}]}`, true},
		{"ended", `{"transfers":[],"inbound":[{"agent":"a","id":"x","senderEpoch":1,"ended":true}]}`, true},
		{"empty", `{"transfers":[],"inbound":[]}`, true},
		{"null", `{"transfers":[],"inbound":null}`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := inboundState(t).s
			before := mustSnapshot(t, s)
			err := restoreBytes(s, []byte(c.json))
			if c.ok {
				if err != nil {
					t.Fatal(err)
				}
				// What was restored takes changes.
				tr, ok := s.Inbound("a", "x")
				if !ok && strings.Contains(c.json, `"agent":"a"`) {
					t.Fatal("the record was not restored")
				}
				if ok && !tr.Ended {
					(&applier{t: t, s: s}).mustApply(InboundCmd{Op: InboundCheckpoint, Agent: "a", ID: "x", SenderEpoch: 1,
						Path: "/p", Size: 1, Checkpoint: checkpoint.Checkpoint{Offset: 1, Hash: []byte{1}}})
				}
				return
			}
			if err == nil {
				t.Fatal("restored")
			}
			if b := mustSnapshot(t, s); !bytes.Equal(b, before) {
				t.Fatal("a refused restore changed the state")
			}
		})
	}
}

// TestInboundApplyDeterministic: the same entries, refused ones among
// them, make the same state on every instance, and the same snapshot
// however often it is taken.
func TestInboundApplyDeterministic(t *testing.T) {
	h := hashesOf(t, 1, 3)
	var cmds []InboundCmd
	for i := range 6 {
		id := fmt.Sprintf("t%d", i%3)
		for j := range 4 {
			p := fmt.Sprintf("/r/out/%d/%c", i, 'z'-j)
			at := t0.Add(time.Duration(i*10+j) * time.Second)
			c := inCkpt(uint64(i), p, 3*mib, 0, mib, h[1])
			c.ID, c.Time = id, at
			c2 := inCkpt(uint64(i), p, 3*mib, mib, 2*mib, h[2])
			c2.ID, c2.Time = id, at
			cmds = append(cmds, c, c2)
			if j%2 == 0 {
				c3 := inCkpt(uint64(i), p, 3*mib, 2*mib, 3*mib, h[3])
				c3.ID, c3.Time = id, at
				cm := inCommit(uint64(i), p, "d")
				cm.ID, cm.Time = id, at
				cmds = append(cmds, c3, cm)
			}
		}
		files := inFiles(uint64(i), InboundDone{Path: fmt.Sprintf("/r/out/%d/small", i), Size: int64(i), Digest: "s"})
		files.ID, files.Time = id, t0
		cmds = append(cmds, files)
		stale := inOp(InboundEpoch, 0, "")
		stale.ID = id
		cmds = append(cmds, stale) // refused once i%3 has seen epoch > 0
		if i == 4 {
			end := inOp(InboundEnd, uint64(i), "")
			end.ID, end.Time = id, t0
			cmds = append(cmds, end, InboundCmd{Op: InboundPrune, Keys: []string{InboundKey(inAgent, "t2")}})
		}
	}
	run := func() (*State, []string) {
		s := NewState()
		var results []string
		for i, c := range cmds {
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			results = append(results, fmt.Sprint(s.Apply(KindInbound, 1, b, uint64(i+1))))
		}
		return s, results
	}
	s1, r1 := run()
	s2, r2 := run()
	if !reflect.DeepEqual(r1, r2) {
		t.Fatalf("results differ:\n%q\n%q", r1, r2)
	}
	refused := 0
	for _, r := range r1 {
		if r != "<nil>" {
			refused++
		}
	}
	if refused == 0 || refused == len(r1) {
		t.Fatalf("%d of %d entries refused: the sequence does not test both", refused, len(r1))
	}
	b1 := mustSnapshot(t, s1)
	for range 5 {
		if b2 := mustSnapshot(t, s2); !bytes.Equal(b1, b2) {
			t.Fatalf("snapshots differ:\n%s\n%s", b1, b2)
		}
	}
	if all, open := s1.InboundCount(); all != 3 || open != 2 {
		t.Fatalf("count %d, %d open", all, open)
	}
}

// TestInboundNamesByteForByte: a destination whose name is not UTF-8 is
// recorded as that name, through the log's JSON and a snapshot, as every
// other name of the state is (names.go): two such names stay two files,
// and a name that is UTF-8 is written as it always was.
func TestInboundNamesByteForByte(t *testing.T) {
	h := hashesOf(t, 1, 2)
	a := &applier{t: t, s: NewState()}
	odd, odd2 := "/r/out/a\xff", "/r/out/a\xfe%41"
	a.mustApply(inCkpt(1, odd, 2*mib, 0, mib, h[1]), inCkpt(1, odd2, 2*mib, 0, 2*mib, h[2]), inCommit(1, odd2, "d"),
		inCkpt(1, inPath, 2*mib, 0, mib, h[1]))
	if f, _ := a.fileAt(odd); f.Last.Offset != mib || f.Committed {
		t.Fatalf("%q: %+v", odd, f)
	}
	if f, _ := a.fileAt(odd2); !f.Committed {
		t.Fatalf("%q: %+v", odd2, f)
	}
	a.mustApply(inCkpt(1, odd, 2*mib, mib, 2*mib, h[2]))
	if tr, _ := a.s.Inbound(inAgent, inID); len(tr.Files) != 3 {
		t.Fatalf("files %q", keysOf(tr.Files))
	}
	b := mustSnapshot(t, a.s)
	if !json.Valid(b) || !bytes.Contains(b, []byte(`"`+inPath+`":`)) {
		t.Fatalf("snapshot %s", b)
	}
	s2 := NewState()
	if err := restoreBytes(s2, b); err != nil {
		t.Fatal(err)
	}
	want, _ := a.s.Inbound(inAgent, inID)
	if got, ok := s2.Inbound(inAgent, inID); !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("restored %+v (%v), want files %q", got, ok, keysOf(want.Files))
	}
	if b2 := mustSnapshot(t, s2); !bytes.Equal(b2, b) {
		t.Fatalf("the restored state's snapshot differs:\n%s\nwas\n%s", b2, b)
	}

	// A log entry names a file as its JSON says: a UTF-8 name as it is,
	// any other escaped.
	for _, c := range []struct {
		path string
		json string
	}{
		{inPath, `"path":"/r/out/a"`},
		{"/r/out/é%41", `"path":"/r/out/é%41"`},
		{odd, `"path":"\u0000/r/out/a%FF"`},
	} {
		e, err := json.Marshal(inCkpt(1, c.path, 1, 0, 1, []byte{1}))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(e, []byte(c.json)) {
			t.Fatalf("%q written %s", c.path, e)
		}
		var back InboundCmd
		if err := json.Unmarshal(e, &back); err != nil || back.Path != c.path {
			t.Fatalf("%s read back as %q (%v)", e, back.Path, err)
		}
	}
	// An entry whose escaped name is malformed is refused.
	before := mustSnapshot(t, a.s)
	bad := []byte(`{"op":"checkpoint","agent":"paris","id":"t1","senderEpoch":1,"path":"\u0000/r/out/%zz","size":1,"checkpoint":{"offset":1,"hash":"AQ=="}}`)
	if res := a.s.Apply(KindInbound, 1, bad, 999); res == nil {
		t.Fatal("a malformed escaped name applied")
	}
	if b := mustSnapshot(t, a.s); !bytes.Equal(b, before) {
		t.Fatal("a refused entry changed the state")
	}
	for _, j := range []string{
		`{"transfers":[],"inbound":[{"agent":"a","id":"x","files":{"\u0000/r/out/%zz":{"size":1}}}]}`,
		`{"transfers":[],"inbound":[{"agent":"a","id":"x","files":{"\u0000/r/out/b":{"size":1},"/r/out/b":{"size":2}}}]}`,
	} {
		if err := restoreBytes(NewState(), []byte(j)); err == nil {
			t.Fatalf("restored %s", j)
		}
	}
}

func keysOf(m map[string]*InboundFile) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestInboundConcurrentReads: queries and snapshots taken while entries
// are applied read copies (go test -race).
func TestInboundConcurrentReads(t *testing.T) {
	h := hashesOf(t, 1, 3)
	a := &applier{t: t, s: NewState()}
	a.mustApply(inCkpt(1, inPath, 3*mib, 0, mib, h[1]))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			snap, err := a.s.Snapshot()
			if err != nil {
				t.Error(err)
				return
			}
			if tr, ok := a.s.Inbound(inAgent, inID); ok {
				for _, f := range tr.Files {
					_ = len(f.Last.Hash) + len(f.Prev.Hash)
				}
			}
			a.s.InboundFileAt(inAgent, inID, inPath)
			a.s.InboundCount()
			a.s.InboundEnded(t0.Add(time.Hour), 3)
			var b bytes.Buffer
			if err := snap.WriteJSON(&b); err != nil {
				t.Error(err)
			}
			snap.Release()
		}
	}()
	for i := range 200 {
		p := fmt.Sprintf("/r/out/%d", i%7)
		c := inCkpt(uint64(1+i/10), p, 3*mib, 0, mib, h[1])
		c.Time = t0.Add(time.Duration(i) * time.Second)
		if err := a.apply(KindInbound, 1, c); err != nil {
			t.Fatal(err)
		}
		c2 := inCkpt(uint64(1+i/10), p, 3*mib, mib, 2*mib, h[2])
		if err := a.apply(KindInbound, 1, c2); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			e := inOp(InboundEnd, 1, "")
			e.ID = fmt.Sprint("e", i)
			if err := a.apply(KindInbound, 1, e); !errors.Is(err, ErrInboundState) {
				t.Fatalf("end of an unknown transfer: %v", err)
			}
			ep := inOp(InboundEpoch, 1, "")
			ep.ID = e.ID
			a.mustApply(ep, e)
		}
	}
	close(stop)
	wg.Wait()
}

// inFiles records files received whole, under epoch.
func inFiles(epoch uint64, files ...InboundDone) InboundCmd {
	c := inOp(InboundFiles, epoch, "")
	c.Files = files
	return c
}

// TestInboundFilesWhole: small files received whole are recorded
// committed, all of an entry or none; a file committed with another
// digest, a file without path or digest, a stale sender or an ended
// transfer refuse the whole entry.
func TestInboundFilesWhole(t *testing.T) {
	h := hashesOf(t, 1, 2)
	const d1, d2 = "d1", "d2"
	base := func(t *testing.T) *applier {
		a := &applier{t: t, s: NewState()}
		a.mustApply(
			inFiles(3, InboundDone{Path: "/r/out/x", Size: 5, Digest: d1}, InboundDone{Path: "/r/out/empty", Digest: d1}),
			inCkpt(3, inPath, 2*mib, 0, mib, h[1]), // in flight
		)
		return a
	}
	a := base(t)
	if f, epoch := a.fileAt("/r/out/x"); epoch != 3 || !reflect.DeepEqual(f, InboundFile{Size: 5, Last: checkpoint.Checkpoint{Offset: 5}, Committed: true, Digest: d1}) {
		t.Fatalf("received whole: %+v (epoch %d)", f, epoch)
	}
	if f, _ := a.fileAt("/r/out/empty"); !f.Committed || f.Size != 0 || f.Digest != d1 {
		t.Fatalf("empty file received whole: %+v", f)
	}

	for _, c := range []struct {
		name string
		cmd  InboundCmd
		want error
	}{
		{"another digest among new ones", inFiles(3, InboundDone{Path: "/r/out/new", Size: 1, Digest: d2},
			InboundDone{Path: "/r/out/x", Size: 5, Digest: d2}), ErrInboundState},
		{"no path", inFiles(3, InboundDone{Path: "/r/out/new", Size: 1, Digest: d2}, InboundDone{Size: 1, Digest: d2}), ErrInboundState},
		{"no digest", inFiles(3, InboundDone{Path: "/r/out/new", Size: 1, Digest: d2}, InboundDone{Path: "/r/out/y", Size: 1}), ErrInboundState},
		{"negative size", inFiles(3, InboundDone{Path: "/r/out/new", Size: -1, Digest: d2}), ErrInboundState},
		{"stale", inFiles(2, InboundDone{Path: "/r/out/new", Size: 1, Digest: d2}), ErrStaleSender},
		{"no agent", func() InboundCmd {
			c := inFiles(3, InboundDone{Path: "/r/out/new", Size: 1, Digest: d2})
			c.Agent = ""
			return c
		}(), ErrInboundState},
		// A file received whole is committed: no write, commit with
		// another digest or removal of it.
		{"checkpoint of a file received whole", inCkpt(3, "/r/out/x", 5, 0, 5, h[1]), ErrInboundState},
		{"commit with another digest", inCommit(3, "/r/out/x", d2), ErrInboundState},
		{"remove", inOp(InboundRemove, 3, "/r/out/x"), ErrInboundState},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := base(t)
			a.refused(c.cmd, c.want)
			if _, _, ok := a.s.InboundFileAt(inAgent, inID, "/r/out/new"); ok {
				t.Fatal("part of a refused entry recorded")
			}
		})
	}

	// Replayed, or a commit of one replayed: accepted, the same.
	a.mustApply(inFiles(3, InboundDone{Path: "/r/out/x", Size: 5, Digest: d1}), inCommit(3, "/r/out/x", d1))
	if f, _ := a.fileAt("/r/out/x"); !f.Committed || f.Digest != d1 || f.Size != 5 {
		t.Fatalf("replayed: %+v", f)
	}
	// A file in flight that is then received whole (a sender that sent
	// it again as a small file) is committed.
	a.mustApply(inFiles(4, InboundDone{Path: inPath, Size: 2 * mib, Digest: d2}))
	if f, epoch := a.fileAt(inPath); epoch != 4 || !f.Committed || f.Digest != d2 || f.Prev.Offset != 0 || len(f.Last.Hash) != 0 {
		t.Fatalf("in flight, then whole: %+v (epoch %d)", f, epoch)
	}
	// A new transfer may begin with files received whole; an ended one
	// takes none.
	c := inFiles(1, InboundDone{Path: inPath, Size: 1, Digest: d1})
	c.ID = "t2"
	a.mustApply(c)
	if f, epoch, ok := a.s.InboundFileAt(inAgent, "t2", inPath); !ok || epoch != 1 || !f.Committed {
		t.Fatalf("t2: %+v %d %v", f, epoch, ok)
	}
	a.mustApply(inOp(InboundEnd, 4, ""))
	a.refused(inFiles(4, InboundDone{Path: "/r/out/late", Size: 1, Digest: d1}), ErrInboundState)

	// Through a snapshot, names that are not UTF-8 among them.
	odd := "/r/out/\xff%"
	c = inFiles(1, InboundDone{Path: odd, Size: 1, Digest: d1}, InboundDone{Path: "/r/out/plain", Size: 2, Digest: d2})
	c.ID = "t3"
	e, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(e, []byte(`"path":"\u0000/r/out/%FF%25"`)) || !bytes.Contains(e, []byte(`"path":"/r/out/plain"`)) {
		t.Fatalf("entry %s", e)
	}
	a.mustApply(c)
	if f, _, ok := a.s.InboundFileAt(inAgent, "t3", odd); !ok || f.Size != 1 {
		t.Fatalf("%q: %+v %v", odd, f, ok)
	}
	s2 := restored(t, a.s)
	for _, id := range []string{inID, "t2", "t3"} {
		want, _ := a.s.Inbound(inAgent, id)
		if got, ok := s2.Inbound(inAgent, id); !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s restored: %+v, want %+v", id, got, want)
		}
	}
	bad := []byte(`{"op":"files","agent":"paris","id":"t4","senderEpoch":1,"files":[{"path":"\u0000%g","size":1,"digest":"d"}]}`)
	if res := a.s.Apply(KindInbound, 1, bad, 999); res == nil {
		t.Fatal("a malformed escaped name applied")
	}
	if _, ok := a.s.Inbound(inAgent, "t4"); ok {
		t.Fatal("a refused entry recorded a transfer")
	}
}
