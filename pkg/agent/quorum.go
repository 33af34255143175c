package agent

import (
	"errors"
	"time"

	"github.com/ftagent/ftagent/pkg/config"
)

// ErrQuorumLost is what Run returns when quorumLossAction=exit ended the
// instance: it was without a leader for longer than quorumLossTimeout. The
// node has logged why; the command exits with its own status so that a
// supervisor restarts the instance.
var ErrQuorumLost = errors.New("quorum lost (quorumLossAction=exit)")

// quorumLossTimeout is the ha.Config value: zero (retry for ever) unless the
// properties ask to exit.
func quorumLossTimeout(cfg *config.Config) time.Duration {
	if cfg.QuorumLossAction != config.QuorumLossExit {
		return 0
	}
	return cfg.QuorumLossTimeout
}
