package nat64

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ErrNeedPrefix: an IPv4 PATH from a host that reaches IPv4 only through
// NAT64, with no NAT64 prefix given (Config.NAT64Prefix) or discovered.
var ErrNeedPrefix = errors.New("nat64: no NAT64 prefix to reach an IPv4 PATH")

// resolvePath turns the PATH argument into the outer address to send to.
// An IPv6 literal is used as is. An IPv4 literal, or a hostname's A record,
// is reached over IPv4 where the socket and the host can, else through
// NAT64 with the configured or discovered prefix. A hostname with no A
// record falls back to its AAAA record.
func (e *Endpoint) resolvePath(ctx context.Context) (netip.AddrPort, error) {
	t := e.cfg.Path
	var v4, v6 netip.Addr
	switch {
	case t.Host == "" && t.Addr.Is4():
		v4 = t.Addr
	case t.Host == "":
		v6 = t.Addr
	default:
		r := e.cfg.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		if as, err := r.LookupNetIP(ctx, "ip4", t.Host); err == nil && len(as) > 0 && as[0].Unmap().Is4() {
			v4 = as[0].Unmap()
		} else if as, err6 := r.LookupNetIP(ctx, "ip6", t.Host); err6 == nil && len(as) > 0 && as[0].Is6() {
			v6 = as[0]
		} else {
			return netip.AddrPort{}, fmt.Errorf("nat64: resolving PATH %s: %v", t.Host, err)
		}
	}
	local := e.conn.LocalAddr().Addr()
	canV6 := local.Is6() && !local.Is4In6()
	canV4 := local.Is4() || local.IsUnspecified() && local.Is6()
	if v6.IsValid() {
		if !canV6 {
			return netip.AddrPort{}, fmt.Errorf("nat64: PATH %s is IPv6 but the outer socket %s is IPv4", v6, local)
		}
		return netip.AddrPortFrom(v6, t.Port), nil
	}
	if canV4 && e.hasIPv4(v4) {
		return netip.AddrPortFrom(v4, t.Port), nil
	}
	if !canV6 {
		return netip.AddrPortFrom(v4, t.Port), nil // an IPv4 socket: let the system try
	}
	prefix, err := e.nat64Prefix(ctx)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w %s: %w", ErrNeedPrefix, v4, err)
	}
	a, err := Embed(prefix, v4)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, t.Port), nil
}

func (e *Endpoint) hasIPv4(a netip.Addr) bool {
	if e.cfg.HasIPv4 != nil {
		return e.cfg.HasIPv4(a)
	}
	return routeToIPv4(a)
}

// routeToIPv4 asks the routing table: connecting a UDP socket sends nothing
// but fails when no route leads to the address.
func routeToIPv4(a netip.Addr) bool {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 9)))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// nat64Prefix returns the configured prefix, else discovers one (RFC 7050)
// and remembers it.
func (e *Endpoint) nat64Prefix(ctx context.Context) (netip.Prefix, error) {
	e.prefixMu.Lock()
	defer e.prefixMu.Unlock()
	if e.prefix.IsValid() {
		return e.prefix, nil
	}
	ps, err := DiscoverPrefixes(ctx, e.cfg.DNSServer)
	if err != nil {
		return netip.Prefix{}, err
	}
	e.prefix = ps[0]
	e.log.Info("discovered NAT64 prefix", "prefix", e.prefix)
	return e.prefix, nil
}
