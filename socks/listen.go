package socks

import (
	"context"
	"net"
	"net/netip"
)

// listenTCP listens on addr for the front-ends' clients. A listener on a
// loopback address sets no keep-alive on the connections it accepts: a
// client on the same host that goes away is noticed by the kernel at once,
// and the probes' four setsockopt calls are a measurable part of what a
// short connection costs. Elsewhere keep-alive stays Go's default, to
// notice clients that vanished with their network.
func listenTCP(addr string) (net.Listener, error) {
	var lc net.ListenConfig
	if isLoopbackHost(addr) {
		lc.KeepAlive = -1
	}
	return lc.Listen(context.Background(), "tcp", addr)
}

// isLoopbackHost reports whether addr ("host:port") names a loopback IP
// address or localhost.
func isLoopbackHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// isLoopbackAddr reports whether a listener's address is on loopback, where
// the front-ends need no authentication to be safe.
func isLoopbackAddr(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UDPAddr:
		return a.IP.IsLoopback()
	}
	return false
}
