package agent

import (
	"testing"

	"github.com/ftagent/ftagent/pkg/config"
)

func TestSandboxWordsNameWhatTheUserConfigured(t *testing.T) {
	cases := []struct {
		sandboxRoot []string
		reason      string
		want        string
	}{
		{nil, `source path "/etc/passwd": resolves outside the sandbox (/etc/passwd)`,
			`source path "/etc/passwd": resolves outside transferRoot (/etc/passwd)`},
		{nil, `source path "in/etc/x": symbolic link leads outside the sandbox (/etc/x)`,
			`source path "in/etc/x": symbolic link leads outside transferRoot (/etc/x)`},
		{[]string{"in", "out"}, `destination path "../x/": resolves outside the sandbox (/tmp/x)`,
			`destination path "../x/": resolves outside the sandboxRoot entries (/tmp/x)`},
		{[]string{"/srv", "!/srv/private"}, `source path "/srv/private/a": is denied by sandbox entry !/srv/private`,
			`source path "/srv/private/a": is denied by sandboxRoot entry !/srv/private`},
		{nil, "no source given", "no source given"},
	}
	for _, tc := range cases {
		in := &Instance{cfg: &config.Config{SandboxRoot: tc.sandboxRoot}}
		if got := in.sandboxWords(tc.reason); got != tc.want {
			t.Errorf("sandboxRoot %q: %q\n got %q\nwant %q", tc.sandboxRoot, tc.reason, got, tc.want)
		}
	}
}
