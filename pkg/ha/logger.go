package ha

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

// RaftLogger routes hashicorp/raft's hclog output (the raft node's, and the
// network transport's) into zerolog, so that an instance writes one log
// stream in one format.
func RaftLogger(log zerolog.Logger) hclog.Logger {
	level := hclog.Info
	switch log.GetLevel() {
	case zerolog.TraceLevel:
		level = hclog.Trace
	case zerolog.DebugLevel:
		level = hclog.Debug
	case zerolog.WarnLevel:
		level = hclog.Warn
	case zerolog.ErrorLevel, zerolog.FatalLevel, zerolog.PanicLevel:
		level = hclog.Error
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "raft",
		Level:      level,
		JSONFormat: true,
		Output:     &hclogWriter{log: log, every: repeatWindow, seen: map[string]*repeats{}},
	})
}

// repeatWindow is how often one warning or error of raft's about one peer
// is logged while it keeps repeating (failed vote and heartbeat RPCs while a
// peer is down come several times a second).
const repeatWindow = 10 * time.Second

// hclogWriter re-emits hclog's JSON lines as zerolog events. A warning or
// error that repeats (same message, same peer) is logged once per every,
// with the number of repeats left out since the last one.
type hclogWriter struct {
	log   zerolog.Logger
	every time.Duration
	mu    sync.Mutex
	seen  map[string]*repeats
	now   func() time.Time // for tests; time.Now if nil
}

type repeats struct {
	last       time.Time
	suppressed int
}

// admit reports whether a line with this key may be logged now, and how
// many like it were left out before it.
func (w *hclogWriter) admit(key string) (bool, int) {
	now := time.Now()
	if w.now != nil {
		now = w.now()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.seen[key]
	if !ok {
		if len(w.seen) > 1000 { // peers come and go: forget old keys
			clear(w.seen)
		}
		w.seen[key] = &repeats{last: now}
		return true, 0
	}
	if now.Sub(r.last) < w.every {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return true, n
}

// repeatKey identifies "the same complaint": level, message and the peer it
// is about (raft names it "target" or "peer").
func repeatKey(lvl, msg string, m map[string]any) string {
	peer := m["target"]
	if peer == nil {
		peer = m["peer"]
	}
	return fmt.Sprintf("%s\x00%s\x00%v", lvl, msg, peer)
}

func (w *hclogWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(p, []byte{'\n'}) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			w.log.Info().Str("component", "raft").Msg(string(line))
			continue
		}
		lvl, _ := m["@level"].(string)
		msg, _ := m["@message"].(string)
		mod, _ := m["@module"].(string)
		delete(m, "@level")
		delete(m, "@message")
		delete(m, "@module")
		delete(m, "@timestamp")
		suppressed := 0
		if lvl == "warn" || lvl == "error" {
			ok, n := w.admit(repeatKey(lvl, msg, m))
			if !ok {
				continue
			}
			suppressed = n
		}
		var ev *zerolog.Event
		switch lvl {
		case "trace":
			ev = w.log.Trace()
		case "debug":
			ev = w.log.Debug()
		case "warn":
			ev = w.log.Warn()
		case "error":
			ev = w.log.Error()
		default:
			ev = w.log.Info()
		}
		if suppressed > 0 {
			ev = ev.Int("repeatsNotLogged", suppressed)
		}
		ev.Str("component", mod).Fields(m).Msg(msg)
	}
	return len(p), nil
}
