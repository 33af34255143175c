package agentclient

import (
	"errors"
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
		cert, key = cfg.ClientCertificate, cfg.ClientPrivateKey
		if cert == "" {
			// The instance's own certificate, on one of its hosts.
			if self, err := cfg.Select(""); err == nil {
				cert, key, _ = cfg.TLSFiles(self.Name)
			}
		}
		ca = cfg.TLSCA
		if strings.Contains(ca, config.InstancePlaceholder) {
			if self, err := cfg.Select(""); err == nil {
				_, _, ca = cfg.TLSFiles(self.Name)
			}
		}
	}
	keys := trust.Keys{Certificate: config.KeyClientCertificate, PrivateKey: config.KeyClientPrivateKey, CA: config.KeyTLSCA}
	if v := strings.TrimSpace(os.Getenv(EnvTLSMode)); v != "" {
		mode = v
		switch v {
		case config.TLSRequired, config.TLSOptional, config.TLSDisabled:
		default:
			return nil, &config.Error{File: "environment", Key: EnvTLSMode, Msg: "\"" + v + "\" is not required, optional or disabled"}
		}
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
		return nil, trustError(file, err)
	}
	agent := store.Self().Agent
	if cfg != nil {
		agent = cfg.AgentName
	}
	return &trust.Dialer{Mode: trust.Mode(mode), Store: store, Check: trust.ExpectInstanceOf(agent)}, nil
}

// trustError is a certificate store's error as a *config.Error naming the
// key at fault.
func trustError(file string, err error) error {
	var fe *trust.FileError
	if !errors.As(err, &fe) {
		return &config.Error{File: file, Msg: err.Error()}
	}
	msg := fe.Msg
	if fe.Path != "" {
		msg = fe.Path + ": " + msg
	}
	if strings.HasPrefix(fe.Key, "FTAGENT_") {
		// The file was named by a variable, not by agent.properties.
		file = "environment"
	}
	return &config.Error{File: file, Key: fe.Key, Msg: msg}
}
