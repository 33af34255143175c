package copyloop

import (
	"context"
	"crypto/sha256"
	"flag"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
)

var benchSize = flag.Int64("copyloop.benchsize", 256<<20, "bytes in BenchmarkCopy's file (1<<30 for the 1 GiB comparison)")

// BenchmarkCopy copies one file on the local disk with the default buffer
// and checkpoint interval (a checkpoint's raft commit left out), then syncs
// it as the transfer does before its rename; cp, with and without a sync,
// and SHA-256 alone, run beside it for comparison:
//
//	go test -run '^$' -bench Copy ./pkg/transfer/copyloop/ -args -copyloop.benchsize=1073741824
func BenchmarkCopy(b *testing.B) {
	size := *benchSize
	dir := b.TempDir()
	src := filepath.Join(dir, "in.bin")
	writeRandomFile(b, src, size)
	dst := filepath.Join(dir, "out.bin")
	ep, err := endpoint.NewLocal("/") // b.TempDir has no links
	if err != nil {
		b.Fatal(err)
	}
	defer ep.Close()

	run := func(b *testing.B, copyOnce func()) {
		b.SetBytes(size)
		for range b.N {
			b.StopTimer()
			os.Remove(dst)
			os.Remove(endpoint.PartName(dst))
			b.StartTimer()
			copyOnce()
		}
	}
	b.Run("copyloop", func(b *testing.B) {
		ctx := context.Background()
		checkpoints := 0
		run(b, func() {
			sf, err := ep.OpenSource(ctx, src)
			if err != nil {
				b.Fatal(err)
			}
			pf, err := ep.OpenPart(ctx, dst, 0)
			if err != nil {
				b.Fatal(err)
			}
			_, err = Copy(ctx, Params{Src: sf, Dst: pf,
				Checkpoint: func(context.Context, int64, []byte) error { checkpoints++; return nil }})
			if err == nil {
				err = pf.Sync()
			}
			if err != nil {
				b.Fatal(err)
			}
			pf.Close()
			sf.Close()
		})
		b.ReportMetric(float64(checkpoints)/float64(b.N), "checkpoints/op")
	})
	for _, c := range []struct {
		name string
		cmd  []string
	}{
		{"cp", []string{"cp", src, dst}},
		{"cp+sync", []string{"sh", "-c", `cp "$1" "$2" && sync "$2"`, "sh", src, dst}},
	} {
		b.Run(c.name, func(b *testing.B) {
			if _, err := exec.LookPath(c.cmd[0]); err != nil {
				b.Skip(err)
			}
			run(b, func() {
				if out, err := exec.Command(c.cmd[0], c.cmd[1:]...).CombinedOutput(); err != nil {
					b.Fatalf("%v: %v: %s", c.cmd, err, out)
				}
			})
		})
	}
	b.Run("sha256", func(b *testing.B) {
		buf := make([]byte, DefaultBufferSize)
		run(b, func() {
			f, err := os.Open(src)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(sha256.New(), f, buf); err != nil {
				b.Fatal(err)
			}
			f.Close()
		})
	})
}

func writeRandomFile(b *testing.B, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if _, err := f.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			b.Fatal(err)
		}
	}
	// On disk before the timing starts: its writeback would weigh on the
	// first runs.
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}
