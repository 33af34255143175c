package transfer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// thinLog is a fakeLog that keeps only the first entry's files in the
// state: the files of the appends are counted and dropped, so that the
// replicated state's own size does not hide what planning holds.
type thinLog struct {
	*fakeLog
	files, dirs int // carried by the appends
	sample      func()
}

func (l *thinLog) Apply(kind string, epoch uint64, data any, timeout time.Duration) (any, error) {
	l.sample()
	if kind == KindAppend {
		b, err := json.Marshal(data)
		if err != nil {
			return nil, err
		}
		a, err := replicated.DecodeAppend(b)
		if err != nil {
			return nil, err
		}
		l.files, l.dirs = l.files+len(a.Files), l.dirs+len(a.Dirs)
		a.Files, a.Dirs = nil, nil
		data, _ = replicated.CompactAppend(a)
	}
	return l.fakeLog.Apply(kind, epoch, data, timeout)
}

// heapPeak samples the heap in use until stopped, and returns its peak
// above what was in use when it began (after a collection).
type heapPeak struct {
	mu         sync.Mutex
	base, peak uint64
	stop       chan struct{}
	done       chan struct{}
}

func startHeapPeak() *heapPeak {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := &heapPeak{base: ms.HeapInuse, peak: ms.HeapInuse, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-tick.C:
				h.sample()
			}
		}
	}()
	return h
}

func (h *heapPeak) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.mu.Lock()
	h.peak = max(h.peak, ms.HeapInuse)
	h.mu.Unlock()
}

// end stops the sampling and returns the peak growth in MiB.
func (h *heapPeak) end() float64 {
	close(h.stop)
	<-h.done
	h.sample()
	return float64(h.peak-h.base) / (1 << 20)
}

// BenchmarkPlanMemory plans and commits a recursive request of 200,000
// empty files, in 200 directories or in one, and reports the peak of the
// heap in use meanwhile (above what was in use before): the planning's
// share of the active's memory. Run with -benchtime=1x; GOGC applies as
// usual.
func BenchmarkPlanMemory(b *testing.B) {
	for _, dirs := range []int{200, 1} {
		b.Run(fmt.Sprintf("dirs=%d", dirs), func(b *testing.B) { benchmarkPlanMemory(b, 200_000, dirs) })
	}
}

func benchmarkPlanMemory(b *testing.B, files, dirs int) {
	r := newRig(b)
	for d := range dirs {
		dir := filepath.Join(r.root, "in", "big", fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(dir, 0o750); err != nil {
			b.Fatal(err)
		}
		for i := range files / dirs {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%06d", d*files/dirs+i)))
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		r.state = NewState()
		h := &heapPeak{}
		log := &thinLog{fakeLog: &fakeLog{}, sample: func() { h.sample() }}
		m := r.manager(log.fakeLog, r.local)
		m.raft = log
		b.StartTimer()
		h = startHeapPeak()
		tr, err := submitAs(m, 1, context.Background(), fmt.Sprint("big", i), Request{Sources: []string{"in/big/"}, Destination: "out/big/", Recursive: true})
		peak := h.end()
		if err != nil {
			b.Fatal(err)
		}
		if n := log.files + tr.FileCount(); n != files {
			b.Fatalf("%d files committed, want %d", n, files)
		}
		b.ReportMetric(peak, "peak-heap-MiB")
	}
}
