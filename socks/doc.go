// Package socks is geneve64's local front-ends to the inner network: a
// SOCKS5 proxy (CONNECT and UDP ASSOCIATE, built on
// github.com/things-go/go-socks5) and TCP/UDP port forwards in both
// directions. They reach the tunnel only through a [Network], which the
// netstack implements.
package socks

import (
	"context"
	"net"
	"net/netip"
)

// Network is the inner network the front-ends dial into and listen on;
// *stack.Stack is one.
type Network interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	Listen(network, address string) (net.Listener, error)
	ListenPacket(network, address string) (net.PacketConn, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}
