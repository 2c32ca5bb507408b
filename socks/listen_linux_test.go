package socks

import (
	"net"
	"testing"

	"geneve64/internal/testpeer"
)

// TestListenKeepAlive: connections accepted on loopback carry no
// keep-alive; on the wildcard address they keep Go's default (on).
func TestListenKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want int
	}{{"127.0.0.1:0", 0}, {"0.0.0.0:0", 1}} {
		ln, err := listenTCP(tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if got := testpeer.KeepAlive(t, s); got != tc.want {
			t.Errorf("listening on %s: accepted connection has SO_KEEPALIVE %d, want %d", tc.addr, got, tc.want)
		}
	}
	for addr, want := range map[string]bool{"127.0.0.1:1080": true, "[::1]:1080": true, "localhost:1080": true,
		"127.8.9.10:1": true, "0.0.0.0:1080": false, "[::]:1080": false, "10.0.0.1:1080": false, "no port": false} {
		if got := isLoopbackHost(addr); got != want {
			t.Errorf("isLoopbackHost(%q) = %v", addr, got)
		}
	}
}
