package agentclient

import (
	"os"
	"strings"

	"github.com/ftagent/ftagent/pkg/config"
	"github.com/ftagent/ftagent/pkg/trust"
)

// Environment variables that set a command's TLS, over agent.properties.
const (
	EnvTLSMode           = "FTAGENT_TLS_MODE"
	EnvTLSCA             = "FTAGENT_TLS_CA"
	EnvClientCertificate = "FTAGENT_CLIENT_CERTIFICATE"
	EnvClientPrivateKey  = "FTAGENT_CLIENT_PRIVATE_KEY"
)

// Dialer is how a command connects to the instances of cfg (nil
// when only -x was given): TLS with the client certificate of
// FTAGENT_CLIENT_CERTIFICATE, else clientCertificate, else the
// certificate of the instance this host runs (instanceName or the host
// name), verifying that the server is an instance of the agent. Missing
// or unreadable files are a *config.Error naming the key (exit 2).
func Dialer(cfg *config.Config) (*trust.Dialer, error) {
	file := "environment"
	mode := config.TLSRequired
	var cert, key, ca string
	if cfg != nil {
		file = cfg.Path
		mode = cfg.TLSMode
		cert, key, ca = cfg.ClientCertificate, cfg.ClientPrivateKey, cfg.TLSCA
		// On one of the instances' hosts: its own certificate, and its CA
		// bundle when that is named per instance.
		if self, err := cfg.Select(""); err == nil {
			icert, ikey, ica := cfg.TLSFiles(self.Name)
			if cert == "" {
				cert, key = icert, ikey
			}
			ca = ica
		}
	}
	keys := trust.Keys{Certificate: config.KeyClientCertificate, PrivateKey: config.KeyClientPrivateKey, CA: config.KeyTLSCA}
	if v := strings.TrimSpace(os.Getenv(EnvTLSMode)); v != "" {
		if err := config.CheckTLSMode(v); err != nil {
			return nil, &config.Error{File: "environment", Key: EnvTLSMode, Msg: err.Error()}
		}
		mode = v
	}
	if v := os.Getenv(EnvClientCertificate); v != "" {
		cert, keys.Certificate = v, EnvClientCertificate
	}
	if v := os.Getenv(EnvClientPrivateKey); v != "" {
		key, keys.PrivateKey = v, EnvClientPrivateKey
	}
	if v := os.Getenv(EnvTLSCA); v != "" {
		ca, keys.CA = v, EnvTLSCA
	}
	if mode == config.TLSDisabled {
		return &trust.Dialer{Mode: trust.Disabled}, nil
	}
	// A certificate and its key come together: one from the environment
	// and the other from agent.properties never match.
	if (keys.Certificate == EnvClientCertificate) != (keys.PrivateKey == EnvClientPrivateKey) {
		set, unset := EnvClientCertificate, EnvClientPrivateKey
		if keys.PrivateKey == EnvClientPrivateKey {
			set, unset = unset, set
		}
		return nil, &config.Error{File: "environment", Key: unset, Msg: "not set, but " + set + " is: set both (the certificate and its key), or neither"}
	}
	if cert == "" && cfg != nil && cfg.TLSCertificate != "" {
		return nil, &config.Error{File: file, Key: config.KeyClientCertificate,
			Msg: "this host runs no instance of the agent, so set clientCertificate and clientPrivateKey (or " + EnvClientCertificate + " and " + EnvClientPrivateKey + ") to the certificate this command presents"}
	}
	store, err := trust.Load(trust.Files{Certificate: cert, PrivateKey: key, CA: ca}, keys)
	if err != nil {
		return nil, config.FileError(file, err)
	}
	agent := store.Self().Agent
	if cfg != nil {
		agent = cfg.AgentName
	}
	return &trust.Dialer{Mode: trust.Mode(mode), Store: store, Check: trust.ExpectInstanceOf(agent),
		Files: trust.Files{Certificate: cert, PrivateKey: key, CA: ca}, Keys: keys}, nil
}

// AlternateDialer is how a command connects to the instances of ra, an
// alternate group of cfg's agent (alternates): as Dialer does, but
// presenting agent.NAME.clientCertificate when it is set, and verifying
// that the server is an instance of ra's agent.
func AlternateDialer(cfg *config.Config, ra config.RemoteAgent) (*trust.Dialer, error) {
	d, err := Dialer(cfg)
	if err != nil || d.Mode == trust.Disabled {
		return d, err
	}
	files, keys := d.Files, d.Keys
	if ra.ClientCertificate != "" {
		files.Certificate, files.PrivateKey = ra.ClientCertificate, ra.ClientPrivateKey
		keys.Certificate = config.PatternKey(config.KeyAgentClientCertificate, ra.Name)
		keys.PrivateKey = config.PatternKey(config.KeyAgentClientPrivateKey, ra.Name)
	}
	store, err := trust.Load(files, keys)
	if err != nil {
		return nil, config.FileError(cfg.Path, err)
	}
	return &trust.Dialer{Mode: d.Mode, Store: store, Check: trust.ExpectInstanceOf(ra.Name), Files: files, Keys: keys}, nil
}
