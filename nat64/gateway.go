package nat64

import (
	"fmt"
	"net/netip"

	"geneve64/geneve"
)

// GatewayRules are the extension's NAT64 gateway rules as pure functions of
// one packet: no per-flow state, no I/O. The real gateway and the simulator
// both run them. See docs/PROTOCOL.md, "Rules for a gateway".
type GatewayRules struct {
	// Prefix is the NAT64 prefix the site uses for IPv4 destinations.
	Prefix netip.Prefix
	// IPv4 is the gateway's public IPv4 address.
	IPv4 netip.Addr
	// Port is the GENEVE port, 6081 unless set.
	Port uint16
	// Allowed are the IPv6 prefixes the gateway serves. At least one is
	// required; "::/0" makes an open relay and must be said explicitly.
	Allowed []netip.Prefix
	// AllowPrivate lets the gateway relay to private IPv4 networks (10/8,
	// 172.16/12, 192.168/16, 100.64/10) and IPv6 unique local addresses:
	// off, those beside the gateway are out of the extension's reach.
	AllowPrivate bool
	// Stats counts the drops, and Refused the forbidden destinations by
	// reason; either may be nil.
	Stats   *Stats
	Refused *GatewayRefusalCounts
}

// Check validates the rules' configuration.
func (g *GatewayRules) Check() error {
	if err := CheckPrefix(g.Prefix); err != nil {
		return fmt.Errorf("gateway prefix: %w", err)
	}
	if !g.IPv4.Is4() {
		return fmt.Errorf("nat64: gateway IPv4 address %q is not IPv4", g.IPv4)
	}
	if len(g.Allowed) == 0 {
		return fmt.Errorf("nat64: gateway needs at least one allowed prefix (::/0 for an open relay)")
	}
	for _, p := range g.Allowed {
		if !p.IsValid() || !p.Addr().Is6() {
			return fmt.Errorf("nat64: gateway allowed prefix %q is not an IPv6 prefix", p)
		}
	}
	return nil
}

func (g *GatewayRules) port() uint16 {
	if g.Port == 0 {
		return geneve.Port
	}
	return g.Port
}

func (g *GatewayRules) allowed(a netip.Addr) bool {
	for _, p := range g.Allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (g *GatewayRules) drop(r DropReason) (netip.AddrPort, netip.AddrPort, DropReason, bool) {
	if g.Stats != nil {
		g.Stats.Drop(r)
	}
	return netip.AddrPort{}, netip.AddrPort{}, r, false
}

// endpointsOf parses a GENEVE payload as a gateway does: as a transit
// device it ignores critical options (RFC 8926 section 3.5 forbids transit
// devices to drop for them) and needs only the NAT64 option.
func endpointsOf(payload []byte) (Endpoints, DropReason, bool) {
	h, _, err := geneve.Parse(payload)
	if err != nil {
		return Endpoints{}, DropMalformed, false
	}
	e, err := FindOption(&h)
	if err != nil {
		return Endpoints{}, DropOption, false
	}
	return e, 0, true
}

// Inbound applies the IPv4→IPv6 rule to a UDP packet from src to dst
// arriving on the gateway's IPv4 side. If ok, the packet leaves as IPv6 UDP
// from outSrc ([Prefix::src]:src-port) to outDst ([destination identity]:port),
// payload unchanged; otherwise why says which drop it was.
func (g *GatewayRules) Inbound(src, dst netip.AddrPort, payload []byte) (outSrc, outDst netip.AddrPort, why DropReason, ok bool) {
	if dst.Addr().Unmap() != g.IPv4 || dst.Port() != g.port() || !src.Addr().Unmap().Is4() {
		return g.drop(DropNotGENEVE)
	}
	e, why, ok := endpointsOf(payload)
	if !ok {
		return g.drop(why)
	}
	if !g.allowed(e.Dst) {
		return g.drop(DropNotAllowed)
	}
	if why, ok := g.destination(e.Dst); !ok {
		return g.refuse(why)
	}
	from, err := Embed(g.Prefix, src.Addr())
	if err != nil {
		return g.drop(DropMalformed)
	}
	return netip.AddrPortFrom(from, src.Port()), netip.AddrPortFrom(e.Dst, g.port()), 0, true
}

// Outbound applies the IPv6→IPv4 rule to a UDP packet from src to dst
// leaving a site towards the NAT64 prefix. If ok, the packet leaves as IPv4
// UDP from outSrc (the gateway's IPv4:port) to outDst (the embedded IPv4
// address, same port). Packets that are not the gateway's (another source
// port, another destination) are reported as DropNotGENEVE: the ordinary
// NAT64 handles those.
func (g *GatewayRules) Outbound(src, dst netip.AddrPort, payload []byte) (outSrc, outDst netip.AddrPort, why DropReason, ok bool) {
	if src.Port() != g.port() || !g.Prefix.Contains(dst.Addr()) {
		return g.drop(DropNotGENEVE)
	}
	if !g.allowed(src.Addr()) {
		return g.drop(DropNotAllowed)
	}
	v4, err := Extract(g.Prefix, dst.Addr())
	if err != nil {
		return g.drop(DropNotGENEVE)
	}
	e, why, ok := endpointsOf(payload)
	if !ok {
		return g.drop(why)
	}
	if e.Src != src.Addr() {
		return g.drop(DropSpoofed)
	}
	if why, ok := g.destination(v4); !ok {
		return g.refuse(why)
	}
	return netip.AddrPortFrom(g.IPv4, g.port()), netip.AddrPortFrom(v4, dst.Port()), 0, true
}
