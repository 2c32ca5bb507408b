package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"geneve64/nat64"
)

// splitPort splits "host", "host:port", "addr", "[v6]:port" or a bare IPv6
// address; port is 0 when not given.
func splitPort(s string) (host string, port uint16, err error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String(), 0, nil // a bare address, IPv6 colons and all
	}
	if !strings.Contains(s, ":") {
		return s, 0, nil
	}
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return h, uint16(n), nil
}

// The command-line forms of the positional arguments, as the original
// proof of concept took them.

// parseAddrPort parses an address argument such as LOCAL: "2001:db8:a::1",
// "[2001:db8:a::1]:7000", "192.0.2.1" or "192.0.2.1:7000". The port is 0
// when not given, for the caller to apply its default.
func parseAddrPort(what, s string) (netip.AddrPort, error) {
	h, port, err := splitPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s %q: %w", what, s, err)
	}
	a, err := netip.ParseAddr(h)
	if err != nil || a.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("%s %q: not an IP address", what, s)
	}
	return netip.AddrPortFrom(a.Unmap(), port), nil
}

// parseTarget parses a PATH argument: an IPv6 or IPv4 literal, or a
// hostname, each with an optional port (default defPort).
func parseTarget(s string, defPort uint16) (nat64.Target, error) {
	h, port, err := splitPort(s)
	if err != nil {
		return nat64.Target{}, fmt.Errorf("PATH %q: %w", s, err)
	}
	if port == 0 {
		port = defPort
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return nat64.Target{Addr: a.Unmap(), Port: port}, nil
	}
	if !validHostname(h) {
		return nat64.Target{}, fmt.Errorf("PATH %q: neither an IP address nor a hostname", s)
	}
	return nat64.Target{Host: h, Port: port}, nil
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return false
			}
		}
	}
	return true
}

// parseRemote parses a REMOTE argument: an address (a prefix of one host)
// or, where a server accepts many clients, a prefix such as
// "fdd9:f2f4:ed01::/64".
func parseRemote(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("REMOTE %q: not an address or prefix", s)
		}
		if p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("REMOTE %q: host bits set (did you mean %s?)", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("REMOTE %q: not an address or prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
