package client

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseAddresses(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string
		wantErr string // the bad entry the error must name
	}{
		{in: []string{"a:1"}, want: []string{"a:1"}},
		{in: []string{"a:1, b:2", " c:3 "}, want: []string{"a:1", "b:2", "c:3"}},
		{in: []string{"a:1,,", "", "  ", ",b:2"}, want: []string{"a:1", "b:2"}},
		{in: []string{"[::1]:7101", "127.0.0.1:7102"}, want: []string{"[::1]:7101", "127.0.0.1:7102"}},
		{in: []string{"a:1", "a:1"}, want: []string{"a:1", "a:1"}},
		{in: nil, want: nil},
		{in: []string{" , "}, want: nil},
		{in: []string{"a:1,nohost"}, wantErr: "nohost"},
		{in: []string{"a:port"}, wantErr: "a:port"},
		{in: []string{":7101"}, wantErr: ":7101"},
		{in: []string{"a:0"}, wantErr: "a:0"},
		{in: []string{"a:65536"}, wantErr: "a:65536"},
		{in: []string{"a:+80"}, wantErr: "a:+80"},
		{in: []string{"http://a:80"}, wantErr: "http://a:80"},
		{in: []string{"a b:80"}, wantErr: "a b:80"},
		{in: []string{"::1:80"}, wantErr: "::1:80"},
	}
	for _, tt := range tests {
		got, err := ParseAddresses(tt.in...)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), `"`+tt.wantErr+`"`) {
				t.Errorf("ParseAddresses(%q) error = %v, want one naming %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAddresses(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseAddresses(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
