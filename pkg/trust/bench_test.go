package trust

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"testing"
)

// BenchmarkHandshake is one TLS connection between an instance's
// listener configuration and a client's dialer, over loopback: what a new
// raft or API connection costs.
func BenchmarkHandshake(b *testing.B) {
	dir := b.TempDir()
	res, err := Init(InitOptions{Dir: filepath.Join(dir, "tls"), Agent: "ORDERS", Instances: []string{"ha1", "ha2"}})
	if err != nil {
		b.Fatal(err)
	}
	load := func(n string) *Store {
		s, err := Load(Files{Certificate: res.Instances[n][0], PrivateKey: res.Instances[n][1], CA: res.CA}, Keys{Certificate: "c", PrivateKey: "k", CA: "ca"})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	server, client := load("ha1"), load("ha2")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	cfg := server.ServerConfig(true)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := tls.Server(c, cfg)
				_ = tc.Handshake()
				_, _ = tc.Read(make([]byte, 1))
				tc.Close()
			}()
		}
	}()
	d := &Dialer{Mode: Required, Store: client, Check: ExpectInstanceOf("ORDERS")}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		_, _ = c.Write([]byte{1})
		c.Close()
	}
}
