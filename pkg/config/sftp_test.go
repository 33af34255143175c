package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const sftpBase = `agentName=ORDERS
instances=ha1@127.0.0.1:7101
dataDirectory=data
`

func TestSFTPPartners(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(write(t, dir, sftpBase+`
sftp.PARTNER.address=sftp.partner.example:22
sftp.PARTNER.user=orders
sftp.PARTNER.identityFile=keys/partner_ed25519
sftp.PARTNER.knownHostsFile=/etc/ftagent/known_hosts
sftp.PARTNER.root=/upload
sftp.PARTNER.maxConnections=4
sftp.BANK.address=10.0.0.9:2222
sftp.BANK.user=ftagent
sftp.BANK.passwordFile=/etc/ftagent/bank.pw
sftp.BANK.knownHostsFile=known_hosts
sftp.BANK.keepAlive=5s
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []SFTPPartner{
		{Name: "BANK", Address: "10.0.0.9:2222", User: "ftagent", PasswordFile: "/etc/ftagent/bank.pw",
			KnownHostsFile: filepath.Join(dir, "known_hosts"), MaxConnections: 1, Timeout: 30 * time.Second, KeepAlive: 5 * time.Second},
		{Name: "PARTNER", Address: "sftp.partner.example:22", User: "orders", IdentityFile: filepath.Join(dir, "keys/partner_ed25519"),
			KnownHostsFile: "/etc/ftagent/known_hosts", Root: "/upload", MaxConnections: 4, Timeout: 30 * time.Second, KeepAlive: 15 * time.Second},
	}
	if !reflect.DeepEqual(c.SFTPPartners, want) {
		t.Errorf("SFTPPartners =\n%+v\nwant\n%+v", c.SFTPPartners, want)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
}

func TestSFTPPartnerErrors(t *testing.T) {
	full := map[string]string{
		"address": "h:22", "user": "u", "identityFile": "/k", "knownHostsFile": "/kh",
	}
	cases := []struct {
		change map[string]string // "" deletes
		key    string
		msg    string
	}{
		{map[string]string{"address": ""}, "sftp.P.address", "needs sftp.P.address"},
		{map[string]string{"knownHostsFile": ""}, "sftp.P.knownHostsFile", "needs sftp.P.knownHostsFile"},
		{map[string]string{"address": "nohostport"}, "sftp.P.address", "not host:port"},
		{map[string]string{"identityFile": ""}, "sftp.P.identityFile", "or sftp.P.passwordFile"},
		{map[string]string{"identityFile": "", "passwordFile": "/pw", "passphraseFile": "/pp"}, "sftp.P.passphraseFile", "without sftp.P.identityFile"},
		{map[string]string{"root": "upload"}, "sftp.P.root", "not an absolute path"},
		{map[string]string{"maxConnections": "0"}, "sftp.P.maxConnections", ""},
		{map[string]string{"timeout": "10ms"}, "sftp.P.timeout", ""},
	}
	for _, tc := range cases {
		props := map[string]string{}
		for k, v := range full {
			props[k] = v
		}
		for k, v := range tc.change {
			if v == "" {
				delete(props, k)
			} else {
				props[k] = v
			}
		}
		var b strings.Builder
		b.WriteString(sftpBase)
		for k, v := range props {
			b.WriteString("sftp.P." + k + "=" + v + "\n")
		}
		_, err := Load(write(t, t.TempDir(), b.String()))
		e := asError(t, err)
		if e.Key != tc.key || !strings.Contains(e.Msg, tc.msg) {
			t.Errorf("%v: got %s: %s; want key %s with %q", tc.change, e.Key, e.Msg, tc.key, tc.msg)
		}
	}
	// A misspelt key is reported, with the right one suggested.
	dir := t.TempDir()
	c, err := Load(write(t, dir, sftpBase+"sftp.P.address=h:22\nsftp.P.user=u\nsftp.P.identityFile=/k\nsftp.P.knownHostsFile=/kh\nsftp.P.knowHostsFile=/x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], `did you mean "sftp.P.knownHostsFile"`) {
		t.Errorf("warnings = %q", c.Warnings)
	}
	_ = os.Remove(dir)
}
