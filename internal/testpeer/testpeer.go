// Package testpeer runs the small servers tests talk to on the host (a TCP
// server with a handler per connection, an upper-casing UDP server), reads
// back what tests set on sockets (KeepAlive) and counts goroutines for
// leak checks (Goroutines). It is its own package because the tests of
// stack, socks and e2e all need the same ones, and test files cannot share
// code across packages; like net/http/httptest, nothing but tests imports
// it.
package testpeer

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

// TCP listens on network/addr until the test ends and runs handle on
// each connection in its own goroutine, closing the connection after.
func TCP(t testing.TB, network, addr string, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln
}

// Shout answers every datagram on pc with its upper-cased copy until pc
// is closed.
func Shout(pc net.PacketConn) {
	buf := make([]byte, 2000)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(bytes.ToUpper(buf[:n]), from)
	}
}

// UDPUpper runs Shout on an IPv4 loopback socket until the test ends and
// returns its address.
func UDPUpper(t testing.TB) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go Shout(pc)
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}
