package nat64

import (
	"net"
	"net/netip"
	"strconv"
)

// Target is where a non-server endpoint sends (Config.Path): an IP literal
// or a hostname, with a port.
type Target struct {
	// Addr is the literal address; invalid when Host is a name.
	Addr netip.Addr
	// Host is the hostname to resolve; empty for a literal.
	Host string
	// Port is the UDP port.
	Port uint16
}

// NewTarget is the Target for host, an IP literal or a hostname, and port.
func NewTarget(host string, port uint16) Target {
	if a, err := netip.ParseAddr(host); err == nil {
		return Target{Addr: a.Unmap(), Port: port}
	}
	return Target{Host: host, Port: port}
}

// String formats t as it would be given on the command line.
func (t Target) String() string {
	if t.Host != "" {
		return net.JoinHostPort(t.Host, strconv.Itoa(int(t.Port)))
	}
	return netip.AddrPortFrom(t.Addr, t.Port).String()
}
