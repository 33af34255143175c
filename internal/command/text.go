package command

import (
	"fmt"
	"strings"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
)

// Size is a byte count for people: 512 B, 4.0 KiB, 16.0 MiB.
func Size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Count is n with its noun, singular for one: "1 file", "2 files",
// "1 failover", "3 failovers".
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Percent is done of total as a whole percentage.
func Percent(done, total int64) string {
	if total <= 0 {
		return "100%"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(done)/float64(total))
}

// StopProgressLine is the line ftstop prints while a normal stop waits for
// running transfers: which, how far, and how long it may still wait.
func StopProgressLine(p api.StopProgress, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "waiting for %s to finish before %s hands the lease over", Count(len(p.Waiting), "running transfer"), p.Instance)
	if p.DrainTimeout > 0 && !p.Since.IsZero() {
		left := time.Duration(p.DrainTimeout*float64(time.Second)) - now.Sub(p.Since)
		fmt.Fprintf(&b, " (at most %s more, drainTimeout)", max(left, 0).Round(time.Second))
	}
	b.WriteString(":")
	const shown = 3
	for i, v := range p.Waiting {
		if i == shown {
			fmt.Fprintf(&b, "; and %d more", len(p.Waiting)-shown)
			break
		}
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %s %s (%s of %s)", v.ID, Percent(v.BytesDone, v.Bytes), Size(v.BytesDone), Size(v.Bytes))
		if v.CurrentFile != "" {
			fmt.Fprintf(&b, " %s", v.CurrentFile)
		}
	}
	b.WriteString("; ftstop -i hands over now")
	return b.String()
}
