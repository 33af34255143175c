package ha

import (
	"bytes"
	"encoding/json"

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
		Output:     &hclogWriter{log: log},
	})
}

// hclogWriter re-emits hclog's JSON lines as zerolog events.
type hclogWriter struct{ log zerolog.Logger }

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
		ev.Str("component", mod).Fields(m).Msg(msg)
	}
	return len(p), nil
}
