// Package agent assembles one running instance of an agent: its listener
// (shared by raft and the client API), its raft node and lease, and the server
// of the client API, whose paths and bodies are pkg/api's. cmd/ftagent parses
// flags and calls Start and Run; everything an instance does lives here or
// below. The client side of the API is pkg/agentclient.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/ftagent/ftagent/pkg/agentlink"
	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/audit"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/config"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/metrics"
	"github.com/ftagent/ftagent/pkg/netmux"
	"github.com/ftagent/ftagent/pkg/sandbox"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
	"github.com/ftagent/ftagent/pkg/trust"
)

// Options says which instance to run.
type Options struct {
	Config  *config.Config
	Self    config.Instance
	Version string
	Logger  zerolog.Logger
	// Join says how an instance without raft state gets into the agent's
	// group: ha.JoinAuto for `ftagent start`, ha.JoinOnly for --join,
	// ha.JoinForceBootstrap for --bootstrap.
	Join ha.JoinMode
}

// Instance is one running instance of an agent.
type Instance struct {
	cfg  *config.Config
	self config.Instance
	log  zerolog.Logger

	mux       *netmux.Mux
	node      *ha.Node
	srv       *http.Server
	transfers *transfer.Manager
	// links are the agents this one sends to (agent.NAME.instances).
	links     agentlink.Links
	trail     *audit.Log // nil unless auditLog is set
	tlsMode   trust.Mode
	tls       *trust.Store // nil with tlsMode=disabled
	metrics   *metrics.Metrics
	watchCtx  context.Context
	stopWatch context.CancelFunc
	// refusedMu guards the rate limit of refused connections' records
	// (refusedConn).
	refusedMu      sync.Mutex
	refusedTokens  float64
	refusedAt      time.Time
	refusedDropped int
	// idleMu guards idle: the API connections with a client certificate
	// that wait for their next request (keep-alive), so that a re-read
	// CA bundle can close those whose certificate it no longer trusts.
	idleMu sync.Mutex
	idle   map[*netmux.Conn]struct{}

	stopMu  sync.Mutex
	stopRes *api.StopResult
	stopped chan struct{} // closed once a stop has finished its hand-over
	// hurryMu guards what lets an immediate stop hurry a normal one under
	// way (stop).
	hurryMu      sync.Mutex
	stopUnderWay bool
	stopSince    time.Time
	hurryAsked   bool
	serveDone    chan error
	pidFile      string
}

// Start opens the listener and the data directory and starts the raft node.
// An unwritable data directory or a port in use is a *config.Error, as for
// the file itself; a data directory locked by a running instance is not.
func Start(opts Options) (*Instance, error) {
	cfg, self := opts.Config, opts.Self
	agentLog := opts.Logger.With().Str("agent", cfg.AgentName).Logger()
	log := agentLog.With().Str("instance", self.Name).Logger() // pkg/ha adds its own
	if err := cfg.CheckDataDirectory(self.Name); err != nil {
		return nil, err
	}
	store, err := loadTrust(cfg, self)
	if err != nil {
		return nil, err
	}
	in := &Instance{
		cfg:           cfg,
		self:          self,
		log:           log,
		tlsMode:       trust.Mode(cfg.TLSMode),
		refusedTokens: refusedBurst,
		refusedAt:     time.Now(),
		tls:           store,
		stopped:       make(chan struct{}),
		serveDone:     make(chan error, 1),
	}
	switch in.tlsMode {
	case trust.Disabled:
		log.Warn().Msg("tlsMode=disabled: connections are plaintext and anyone who reaches " + self.Address +
			" controls this agent; for throw-away local trials only")
	case trust.Optional:
		log.Warn().Msg("tlsMode=optional: plaintext callers, and TLS callers without a client certificate, are let in unauthenticated; only for the roll from disabled to required")
	}
	mux, err := netmux.Listen(self.Address, netmux.Security{Mode: in.tlsMode, Store: store, Agent: cfg.AgentName, Refused: in.refusedConn})
	if err != nil {
		msg := fmt.Sprintf("instance %s cannot listen on %s: %v", self.Name, self.Address, err)
		if errors.Is(err, syscall.EADDRINUSE) {
			msg = fmt.Sprintf("instance %s address %s is already in use (is another instance or program running there?)", self.Name, self.Address)
		}
		return nil, &config.Error{File: cfg.Path, Key: "instances", Msg: msg}
	}

	in.mux = mux
	peerDialer := &trust.Dialer{Mode: in.tlsMode, Store: store, Check: trust.ExpectInstanceOf(cfg.AgentName)}
	peerClient, err := client.New(cfg.Addresses(), client.WithPolicy(peerPolicy()), client.WithDialer(peerDialer.DialContext))
	if err != nil {
		mux.Close()
		return nil, err
	}
	links, err := agentLinks(cfg, in.tlsMode, store)
	if err != nil {
		mux.Close()
		return nil, err
	}
	in.links = links
	sb, err := sandbox.New(cfg.TransferRoot, cfg.SandboxRoot)
	if err != nil {
		mux.Close()
		return nil, &config.Error{File: cfg.Path, Key: "sandboxRoot", Msg: err.Error()}
	}
	local, err := endpoint.NewLocal(sb.Roots()...)
	if err != nil {
		mux.Close()
		return nil, &config.Error{File: cfg.Path, Key: "transferRoot", Msg: err.Error()}
	}
	storage := &endpoint.Mux{Local: local}
	for _, p := range cfg.SFTPPartners {
		s, err := endpoint.NewSFTP(endpoint.SFTPConfig{
			Name: p.Name, Address: p.Address, User: p.User,
			IdentityFile: p.IdentityFile, PassphraseFile: p.PassphraseFile, PasswordFile: p.PasswordFile,
			KnownHostsFile: p.KnownHostsFile, Root: p.Root,
			MaxConnections: p.MaxConnections, Timeout: p.Timeout, KeepAlive: p.KeepAlive,
		})
		if err != nil {
			mux.Close()
			local.Close()
			return nil, &config.Error{File: cfg.Path, Key: config.PatternKey(config.KeySFTPAddress, p.Name), Msg: err.Error()}
		}
		if storage.SFTP == nil {
			storage.SFTP = map[string]*endpoint.SFTP{}
		}
		storage.SFTP[p.Name] = s
	}
	var trail *audit.Log
	if cfg.AuditLog != "" {
		if trail, err = audit.Open(cfg.AuditLog, self.Name); err != nil {
			mux.Close()
			local.Close()
			return nil, &config.Error{File: cfg.Path, Key: config.KeyAuditLog, Msg: err.Error()}
		}
	}
	state := transfer.NewState()
	var mgr *transfer.Manager // set below, before raft can call back
	var node *ha.Node         // set below; the metrics probe reads it once serving
	in.metrics = metrics.New(metrics.Info{Agent: cfg.AgentName, Instance: self.Name, Version: opts.Version},
		func() metrics.Sample { return sample(node, state, mux) })
	var instances []ha.Peer
	for _, p := range cfg.Instances {
		instances = append(instances, ha.Peer{Name: p.Name, Address: p.Address, Witness: p.Witness})
	}
	node, err = ha.New(ha.Config{
		AgentName:          cfg.AgentName,
		Name:               self.Name,
		Address:            self.Address,
		Witness:            self.Witness,
		Instances:          instances,
		DataDir:            cfg.InstanceDataDir(self.Name),
		HeartbeatTimeout:   cfg.RaftHeartbeatTimeout,
		ElectionTimeout:    cfg.RaftElectionTimeout,
		LeaderLeaseTimeout: cfg.RaftLeaderLeaseTimeout,
		CommitTimeout:      cfg.RaftCommitTimeout,
		SnapshotThreshold:  cfg.RaftSnapshotThreshold,
		SnapshotInterval:   cfg.RaftSnapshotInterval,
		PublishInterval:    cfg.StandbyStatusPublishInterval,
		DiscardTime:        cfg.StandbyStatusDiscardTime,
		RetryMaxInterval:   cfg.ConnectionRetryMaxInterval,
		Join:               opts.Join,
		QuorumLossTimeout:  quorumLossTimeout(cfg),
		Version:            opts.Version,
		Logger:             agentLog,
		NewTransport: func() (raft.Transport, error) {
			layer := mux.NewRaftLayer(self.Address)
			// Spare connections to the other instances, so that a standby
			// that becomes the active does not wait for handshakes.
			for _, p := range cfg.Instances {
				if p.Name != self.Name {
					layer.Warm(p.Address)
				}
			}
			return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
				Stream:  layer,
				MaxPool: 3,
				Timeout: 2 * time.Second,
				Logger:  ha.RaftLogger(log),
			}), nil
		},
		Peers:        clientPeers{c: peerClient},
		StateMachine: state,
		OnActive: func(ctx context.Context, l ha.Lease) {
			if err := trail.Lease(l.Epoch, time.Now()); err != nil {
				log.Error().Err(err).Msg("cannot write the audit log")
			}
			in.metrics.LeaseAcquired()
			mgr.Run(ctx, l)
		},
		Drain:        func(ctx context.Context) error { return mgr.Drain(ctx) },
		DrainTimeout: cfg.DrainTimeout,
		BeforeStart: func(node *ha.Node) {
			mgr = transfer.NewManager(transfer.Limits{
				MaxSourceTransfers:      cfg.MaxSourceTransfers,
				MaxDestinationTransfers: cfg.MaxDestinationTransfers,
				MaxQueuedTransfers:      cfg.MaxQueuedTransfers,
				MaxFilesPerTransfer:     cfg.MaxFilesPerTransfer,
				RecoveryTimeout:         cfg.TransferRecoveryTimeout,
				CheckpointBytes:         cfg.CheckpointBytes,
				CheckpointTime:          cfg.CheckpointTime,
				MaxBandwidth:            cfg.MaxBandwidth,
				HistoryCount:            cfg.TransferHistoryCount,
				HistoryAge:              cfg.TransferHistoryAge,
			}, state, timedLog{Log: node, m: in.metrics}, endpoint.Fenced{Endpoint: storage, Fence: node, Audit: trail}, sb, log)
			mgr.SetSFTP(storage)
			mgr.SetAudit(trail)
			mgr.SetObserver(in.metrics)
			mgr.SetReceivers(links)
			mgr.SetGroups(cfg.Group, cfg.AlternateAfter)
		},
	})
	if err != nil {
		mux.Close()
		local.Close()
		_ = trail.Close()
		return nil, err
	}
	in.node = node
	in.trail = trail
	// The raft stores are open, so this process owns the data directory:
	// say which process it is, for scripts (`kill $(cat …/ftagent.pid)`).
	in.pidFile = cfg.PIDFile(self.Name)
	if err := os.WriteFile(in.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o640); err != nil {
		_ = node.Shutdown()
		mux.Close()
		_ = trail.Close()
		return nil, &config.Error{File: cfg.Path, Key: config.KeyDataDirectory, Msg: fmt.Sprintf("write the PID file: %v", err)}
	}
	in.transfers = mgr
	in.srv = &http.Server{
		Handler:           in.handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          nil,
		ConnContext:       connContext,
		ConnState:         in.connState,
	}
	if store != nil {
		in.watchCtx, in.stopWatch = context.WithCancel(context.Background())
		go store.Watch(in.watchCtx, tlsWatchInterval, in.reloaded)
	}
	go func() { in.serveDone <- in.srv.Serve(mux.API()) }()
	log.Info().Str("address", self.Address).Bool("witness", self.Witness).
		Str("version", opts.Version).Str("status", ha.StatusStarting).Msg("instance started")
	return in, nil
}

// Node is the instance's raft node.
func (in *Instance) Node() *ha.Node { return in.node }

// Addr is the address the instance listens on.
func (in *Instance) Addr() net.Addr { return in.mux.Addr() }

// Run serves until a stop request has been carried out or ctx is cancelled
// (a signal), in which case it stops normally first. It then shuts down.
func (in *Instance) Run(ctx context.Context) error {
	select {
	case <-in.stopped:
	case <-ctx.Done():
		in.log.Info().Msg("signal received: stopping")
		if _, err := in.stop(context.Background(), api.StopRequest{Force: true}); err != nil {
			in.log.Error().Err(err).Msg("stop")
		}
	case err := <-in.serveDone:
		in.shutdown()
		return fmt.Errorf("client API stopped: %w", err)
	case <-in.node.QuorumLost():
		in.shutdown()
		return ErrQuorumLost
	case <-in.node.Failed():
		// The node refused a log entry its build cannot read and applies
		// nothing more: end with that reason (pkg/ha/upgrade.go).
		in.shutdown()
		return in.node.Refusal()
	}
	in.shutdown()
	return nil
}

// RunUntilSignalled is Run for a process: the first of sigs stops the
// instance normally (an active lets its transfers finish, for at most
// drainTimeout), and any later one hurries that stop, as ftstop -i does. A
// signal that comes while a stop asked by ftstop waits hurries it too.
func (in *Instance) RunUntilSignalled(sigs <-chan os.Signal) error {
	ctx, signalled := context.WithCancel(context.Background())
	defer signalled()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sigs:
			in.hurryMu.Lock()
			underWay := in.stopUnderWay
			in.hurryMu.Unlock()
			if underWay {
				in.log.Info().Str("signal", s.String()).Msg("signal received while a stop waits: handing the lease over at once")
				in.node.Hurry()
			}
			signalled()
		case <-done:
			return
		}
		for {
			select {
			case s := <-sigs:
				in.log.Info().Str("signal", s.String()).Msg("signal received again: handing the lease over at once")
				in.node.Hurry()
			case <-done:
				return
			}
		}
	}()
	return in.Run(ctx)
}

// QuorumError refuses a stop that would leave the group's voters without a
// majority, so the agent without an active.
type QuorumError struct {
	Instance string
	Quorum   ha.StopQuorum
}

func (e *QuorumError) Error() string {
	q := e.Quorum
	silent := ""
	if len(q.Silent) > 0 {
		silent = fmt.Sprintf(" (%s not running)", strings.Join(q.Silent, ", "))
	}
	return fmt.Sprintf("stopping %s would leave %d of the %d voting instances running%s, and the agent needs %d to have an active: refused; start the others first, or stop with --force to take the agent down",
		e.Instance, q.Running, q.Voters, silent, q.Needed)
}

// stop carries out one stop of this instance (later requests get the same
// result): the active hands the lease to a standby first. An immediate stop
// asked while a normal one drains hurries it: the drain ends and the lease
// is handed over at once. Unless forced, a stop that would leave the voters
// without a majority is refused with a *QuorumError.
func (in *Instance) stop(ctx context.Context, req api.StopRequest) (api.StopResult, error) {
	in.hurryMu.Lock()
	if req.Immediate {
		in.hurryAsked = true
	}
	hurry := req.Immediate && in.stopUnderWay
	in.hurryMu.Unlock()
	if hurry {
		in.node.Hurry()
	}
	in.stopMu.Lock()
	defer in.stopMu.Unlock()
	if in.stopRes != nil {
		return *in.stopRes, nil
	}
	// A stop, once asked for, completes even if the asker goes away.
	ctx = context.WithoutCancel(ctx)
	if !req.Force {
		if quorum := in.node.CheckStopQuorum(ctx); !quorum.Kept() {
			if req.Immediate {
				in.hurryMu.Lock()
				in.hurryAsked = false
				in.hurryMu.Unlock()
			}
			err := &QuorumError{Instance: in.self.Name, Quorum: quorum}
			in.log.Warn().Int("voters", quorum.Voters).Int("running", quorum.Running).Int("needed", quorum.Needed).
				Msg("stop refused: the voters would lose their majority")
			return api.StopResult{}, err
		}
	}
	in.hurryMu.Lock()
	in.stopUnderWay, in.stopSince = true, time.Now()
	hurry = in.hurryAsked
	in.hurryMu.Unlock()
	if hurry {
		in.node.Hurry()
	}
	immediate := req.Immediate
	res := api.StopResult{Agent: in.cfg.AgentName, Instance: in.self.Name, Address: in.self.Address, WasActive: in.node.IsActive()}
	if res.WasActive {
		hctx := ctx
		if immediate {
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
		}
		lease, err := in.node.HandOver(hctx, immediate)
		switch {
		case errors.Is(err, ha.ErrNoStandby):
			res.LastInstance = true
			res.Message = fmt.Sprintf("%s was the last data instance able to hold the lease: no standby took over, the agent %s has no active instance now",
				in.self.Name, in.cfg.AgentName)
		case err != nil:
			res.Message = fmt.Sprintf("%s stopped, but the hand-over did not complete (%v): a standby takes over after the election timeout", in.self.Name, err)
		default:
			res.NewActive, res.NewActiveAddress, res.Epoch = lease.Holder, lease.Address, lease.Epoch
			res.Message = fmt.Sprintf("%s stopped; %s is now active (epoch %d)", in.self.Name, lease.Holder, lease.Epoch)
		}
	} else {
		if _, err := in.node.HandOver(ctx, immediate); err != nil {
			return res, err
		}
		res.Message = fmt.Sprintf("%s stopped (it was not the active instance)", in.self.Name)
	}
	in.log.Info().Bool("immediate", immediate).Str("newActive", res.NewActive).Uint64("epoch", res.Epoch).
		Bool("lastInstance", res.LastInstance).Str("status", ha.StatusStopping).Msg("stop: " + res.Message)
	in.stopRes = &res
	close(in.stopped)
	return res, nil
}

// stopProgress says what a stop of this instance waits for.
func (in *Instance) stopProgress() api.StopProgress {
	in.hurryMu.Lock()
	p := api.StopProgress{Instance: in.self.Name, Stopping: in.stopUnderWay, DrainTimeout: in.cfg.DrainTimeout.Seconds()}
	if in.stopUnderWay {
		p.Since = in.stopSince.UTC()
	}
	in.hurryMu.Unlock()
	if p.Stopping {
		p.Waiting = in.transfers.Draining(in.cfg.TransferRoot)
	}
	return p
}

func (in *Instance) shutdown() {
	// Let the stop request's answer reach the caller before going away.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = in.srv.Shutdown(ctx)
	if err := in.node.Shutdown(); err != nil {
		in.log.Error().Err(err).Msg("raft shutdown")
	}
	_ = in.mux.Close()
	if in.stopWatch != nil {
		in.stopWatch()
	}
	_ = in.trail.Close()
	if err := os.Remove(in.pidFile); err != nil {
		in.log.Warn().Err(err).Msg("remove the PID file")
	}
	// The endpoint's roots stay open: a descriptor closed under a late
	// operation could be reused for another directory.
	in.log.Info().Str("status", "STOPPED").Msg("instance stopped")
}
