package trust

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Layout of the files Init writes under its directory.
const (
	CAFile    = "ca.pem"     // the CA certificate: every instance's and client's tlsCA
	CAKeyDir  = "ca-key"     // the CA's private key, kept apart (0700)
	CAKeyFile = "ca.key"     // in CAKeyDir (0600)
	ClientDir = "clients"    // under the agent's directory
	instPlace = "{instance}" // config.InstancePlaceholder
)

// ClientSpec is a client certificate to issue.
type ClientSpec struct {
	Name string
	Role Role
}

// ParseClients reads NAME[:ROLE],... (a name alone has role operator).
func ParseClients(s string) ([]ClientSpec, error) {
	var out []ClientSpec
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, role, hasRole := strings.Cut(part, ":")
		c := ClientSpec{Name: strings.TrimSpace(name), Role: RoleOperator}
		if hasRole {
			r, err := ParseRole(strings.TrimSpace(role))
			if err != nil {
				return nil, fmt.Errorf("client %s: %v", c.Name, err)
			}
			c.Role = r
		}
		if err := CheckName("client", c.Name); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// InitOptions say which certificates Init issues.
type InitOptions struct {
	Dir       string
	Agent     string
	Instances []string
	Clients   []ClientSpec
	// Hosts are added to every instance certificate as subject
	// alternative names, for tools that check host names.
	Hosts []string
}

// InitResult is what Init wrote.
type InitResult struct {
	CA        string // the CA certificate's path
	CAKey     string // the CA key's path
	NewCA     bool   // the CA was made now (else an existing one signed)
	Instances map[string][2]string
	Clients   map[string][2]string
	// Files are the agent.properties lines that name the instances'
	// files (tlsCertificate, tlsPrivateKey, tlsCA).
	Files []string
	// Properties are the lines to paste: tlsMode=required, Files, and for
	// each client, commented, the lines that name its files.
	Properties []string
}

// Init issues certificates for an agent's instances and clients under
// dir: the CA (made on the first run, reused by later runs, so that the
// agents it serves trust each other), then for each instance
// dir/AGENT/NAME.pem and .key, and for each client dir/AGENT/clients/NAME.pem
// and .key. It never overwrites a file: a certificate or key that exists
// already is an error, before anything is written. Keys are 0600.
func Init(opts InitOptions) (*InitResult, error) {
	if err := CheckName("agent", opts.Agent); err != nil {
		return nil, err
	}
	if len(opts.Instances) == 0 && len(opts.Clients) == 0 {
		return nil, errors.New("name at least one instance or client")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	res := &InitResult{
		CA: filepath.Join(dir, CAFile), CAKey: filepath.Join(dir, CAKeyDir, CAKeyFile),
		Instances: map[string][2]string{}, Clients: map[string][2]string{},
	}
	agentDir := filepath.Join(dir, opts.Agent)
	type job struct {
		id        Identity
		cert, key string
	}
	var jobs []job
	seen := map[string]bool{}
	for _, n := range opts.Instances {
		if err := CheckName("instance", n); err != nil {
			return nil, err
		}
		if seen["i/"+n] {
			return nil, fmt.Errorf("instance %s is named twice", n)
		}
		seen["i/"+n] = true
		j := job{Instance(opts.Agent, n), filepath.Join(agentDir, n+".pem"), filepath.Join(agentDir, n+".key")}
		jobs = append(jobs, j)
		res.Instances[n] = [2]string{j.cert, j.key}
	}
	for _, c := range opts.Clients {
		if seen["c/"+c.Name] {
			return nil, fmt.Errorf("client %s is named twice", c.Name)
		}
		seen["c/"+c.Name] = true
		j := job{Client(opts.Agent, c.Name, c.Role), filepath.Join(agentDir, ClientDir, c.Name+".pem"), filepath.Join(agentDir, ClientDir, c.Name+".key")}
		jobs = append(jobs, j)
		res.Clients[c.Name] = [2]string{j.cert, j.key}
	}
	for _, j := range jobs {
		for _, p := range []string{j.cert, j.key} {
			if _, err := os.Lstat(p); err == nil {
				return nil, fmt.Errorf("%s exists already: not overwriting it (remove it first to issue a new one)", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
	}

	ca, err := loadOrMakeCA(res)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		certPEM, keyPEM, err := ca.Issue(j.id, IssueOptions{Hosts: hostsFor(j.id, opts.Hosts)})
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(j.cert), 0o755); err != nil {
			return nil, err
		}
		if err := writeNew(j.key, keyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := writeNew(j.cert, certPEM, 0o644); err != nil {
			return nil, err
		}
	}
	res.Files = []string{
		"tlsCertificate=" + filepath.Join(agentDir, instPlace+".pem"),
		"tlsPrivateKey=" + filepath.Join(agentDir, instPlace+".key"),
		"tlsCA=" + res.CA,
	}
	res.Properties = append([]string{"tlsMode=required"}, res.Files...)
	for _, c := range opts.Clients {
		p := res.Clients[c.Name]
		res.Properties = append(res.Properties,
			fmt.Sprintf("# for commands run as client %s (role %s):", c.Name, c.Role),
			"#   clientCertificate="+p[0], "#   clientPrivateKey="+p[1])
	}
	return res, nil
}

func hostsFor(id Identity, hosts []string) []string {
	if id.Kind == KindInstance {
		return hosts
	}
	return nil
}

// loadOrMakeCA reads the CA of res, or makes it when neither of its files
// exists.
func loadOrMakeCA(res *InitResult) (*CA, error) {
	_, certErr := os.Stat(res.CA)
	_, keyErr := os.Stat(res.CAKey)
	switch {
	case certErr == nil && keyErr == nil:
		certPEM, err := os.ReadFile(res.CA)
		if err != nil {
			return nil, err
		}
		keyPEM, err := os.ReadFile(res.CAKey)
		if err != nil {
			return nil, err
		}
		ca, err := ParseCA(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", res.CA, err)
		}
		return ca, nil
	case certErr == nil:
		return nil, fmt.Errorf("%s exists but its key %s does not: put the CA key back there to issue more certificates", res.CA, res.CAKey)
	case keyErr == nil:
		return nil, fmt.Errorf("%s exists but its certificate %s does not", res.CAKey, res.CA)
	}
	ca, err := NewCA("ftagent CA", CAValidity)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(res.CAKey), 0o700); err != nil {
		return nil, err
	}
	if err := writeNew(res.CAKey, ca.KeyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(res.CA, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	res.NewCA = true
	return ca, nil
}

// writeNew writes a file that must not exist yet, durably.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
