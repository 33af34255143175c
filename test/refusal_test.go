package test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/trust"
	"github.com/ftagent/ftagent/test/harness"
)

// A command whose certificates do not fit the agent's (its own from
// another CA, or a CA bundle that does not sign the instances') gets one
// line saying which side refused which file, and exit 2, after asking each
// instance once: retrying cannot mend it.
func TestCommandWithCertificatesThatDoNotFit(t *testing.T) {
	c := newCluster(t, harness.Options{})
	startAll(t, c)
	wait(t, c, 20*time.Second, "one active", activeWithStandbys(2))
	foreign, err := trust.Init(trust.InitOptions{Dir: filepath.Join(c.Dir, "other-ca"), Agent: "ORDERS",
		Clients: []trust.ClientSpec{{Name: "admin", Role: trust.RoleAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	admin, key := c.TLS.ClientFiles(harness.ClientAdmin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		what  string
		env   []string
		wants []string
	}{
		{"a client certificate from another CA",
			[]string{"FTAGENT_CLIENT_CERTIFICATE=" + foreign.Clients["admin"][0], "FTAGENT_CLIENT_PRIVATE_KEY=" + foreign.Clients["admin"][1], "FTAGENT_TLS_CA=" + c.TLS.Res.CA},
			[]string{"TLS: the instances refuse this command's certificate " + foreign.Clients["admin"][0], "FTAGENT_CLIENT_CERTIFICATE", "unknown certificate authority", "every instance"}},
		{"a CA bundle that does not sign the instances",
			[]string{"FTAGENT_CLIENT_CERTIFICATE=" + admin, "FTAGENT_CLIENT_PRIVATE_KEY=" + key, "FTAGENT_TLS_CA=" + foreign.CA},
			[]string{"TLS: this command does not accept the instances' certificates", "unknown authority", foreign.CA, "FTAGENT_TLS_CA", "every instance"}},
	} {
		for _, args := range [][]string{{c.Bin.Ftagent, "show", "--config", c.Props}, {c.Bin.Ftstop, "-i", "--config", c.Props}} {
			r, err := harness.RunEnv(ctx, tc.env, args[0], args[1:]...)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
			ok := r.Exit == 2 && len(lines) == 1 && strings.TrimSpace(r.Stdout) == ""
			for _, w := range tc.wants {
				ok = ok && strings.Contains(lines[0], w)
			}
			if !ok {
				t.Errorf("%s, %s: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", tc.what, filepath.Base(args[0]), r.Exit, r.Stdout, r.Stderr, tc.wants)
			}
		}
	}
	// Nothing was stopped.
	wait(t, c, 5*time.Second, "the same agent", activeWithStandbys(2))
}
