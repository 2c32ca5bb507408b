package stack

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Payload is what the link carries.
type Payload uint8

const (
	// Ethernet frames, with ARP and NDP: GENEVE protocol 0x6558.
	Ethernet Payload = iota
	// IP packets, IPv4 and IPv6, with no link header: GENEVE 0x0800/0x86DD.
	IP
)

// Route is an inner route: Dst via Via, or on-link when Via is not valid.
type Route struct {
	Dst netip.Prefix
	Via netip.Addr
}

// ParseRoute parses "CIDR" or "CIDR@NEXTHOP".
func ParseRoute(s string) (Route, error) {
	dst, via, found := strings.Cut(s, "@")
	p, err := netip.ParsePrefix(dst)
	if err != nil {
		return Route{}, fmt.Errorf("route %q: %q is not a CIDR prefix", s, dst)
	}
	r := Route{Dst: p.Masked()}
	if found {
		if r.Via, err = netip.ParseAddr(via); err != nil {
			return Route{}, fmt.Errorf("route %q: next hop %q is not an IP address", s, via)
		}
		if r.Via.Is4() != p.Addr().Is4() {
			return Route{}, fmt.Errorf("route %q: next hop %s is not of the prefix's family", s, r.Via)
		}
	}
	return r, nil
}

// Defaults for Config fields left zero. A SOCKS5 front-end sends every
// connection from its one inner address, so the per-peer flow bound is as
// large as a front-end's own connection bound.
const (
	DefaultMaxInFlightTCP  = 512
	DefaultMaxUDPFlows     = 4096
	DefaultMaxFlowsPerPeer = 4096
	DefaultUDPIdle         = 2 * time.Minute
)

// Config describes the inner network of one endpoint.
type Config struct {
	// Payload is Ethernet (default) or IP.
	Payload Payload
	// MAC is the stack's link address for Ethernet; see MACFromIdentity.
	MAC net.HardwareAddr
	// Addrs are the inner addresses with their prefixes, e.g. 10.42.0.2/24.
	Addrs []netip.Prefix
	// Routes beyond the on-link prefixes of Addrs.
	Routes []Route
	// MTU is the inner IP MTU (see InnerMTU).
	MTU int
	// DNS servers inside the tunnel; none means the host's resolver.
	DNS []netip.Addr
	// SLAAC configures IPv6 addresses and routes from router advertisements,
	// for when the far end is a real site router.
	SLAAC bool
	// Egress serves flows from peers to any address from this host.
	Egress bool
	// EgressDial dials the host side of egress flows ("tcp" or "udp"); a
	// net.Dialer with a 10 s timeout, and no keep-alive to loopback, by
	// default.
	EgressDial func(ctx context.Context, network, address string) (net.Conn, error)
	// EgressLoopback lets flows to the endpoint's own inner addresses reach
	// the same port on the host's loopback address. Off, they are refused:
	// the host's loopback services are not the peers' to reach.
	EgressLoopback bool
	// EgressAllow and EgressDeny shape what egress flows may reach. By
	// default: anything the host can reach but loopback, link-local
	// (169.254.0.0/16, fe80::/10), multicast, broadcast and unspecified
	// addresses. A deny rule always wins. An allow rule inside one of those
	// ranges opens that part of it; allow rules for other addresses narrow
	// ordinary destinations to themselves.
	EgressAllow, EgressDeny []EgressRule
	// MaxInFlightTCP bounds egress TCP handshakes in progress
	// (DefaultMaxInFlightTCP).
	MaxInFlightTCP int
	// MaxHandshakesPerSource bounds the handshakes in progress from one
	// inner source address once half of MaxInFlightTCP are taken (default
	// MaxInFlightTCP/8, at least 1), so that one cannot hold them all.
	MaxHandshakesPerSource int
	// MaxUDPFlows bounds egress UDP flows (DefaultMaxUDPFlows).
	MaxUDPFlows int
	// MaxFlowsPerPeer bounds the egress flows, TCP and UDP, from one inner
	// source address (DefaultMaxFlowsPerPeer), so one peer cannot take them all. A
	// SOCKS5 front-end sends every connection from its one inner address,
	// so the default is as large as a front-end's own limit.
	MaxFlowsPerPeer int
	// UDPIdle ends an egress UDP flow idle that long (DefaultUDPIdle).
	UDPIdle time.Duration
	// TCP overrides the netstack's TCP settings, for experiments:
	// comma-separated key=value, keys cc (reno, cubic), rack, sack,
	// moderate, twreuse (on, off), rcvbuf, sndbuf (bytes), timewait (a
	// duration). The command takes it from $GENEVE64_TCP.
	TCP string
	// Logger receives the stack's log; slog.Default() by default.
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	if c.MTU == 0 {
		c.MTU = 1280
	}
	if c.MTU < 576 || c.MTU > 65535-14 {
		return fmt.Errorf("stack: MTU %d out of range 576..65521", c.MTU)
	}
	for _, a := range c.Addrs {
		if a.Addr().Is6() && c.MTU < 1280 {
			return fmt.Errorf("stack: MTU %d is below IPv6's minimum of 1280 (address %s)", c.MTU, a)
		}
	}
	if c.Payload == Ethernet && len(c.MAC) != 6 {
		return fmt.Errorf("stack: Ethernet payload needs a 6-byte MAC, have %q", c.MAC)
	}
	if c.MaxInFlightTCP <= 0 {
		c.MaxInFlightTCP = DefaultMaxInFlightTCP
	}
	if c.MaxHandshakesPerSource <= 0 {
		c.MaxHandshakesPerSource = max(1, c.MaxInFlightTCP/8)
	}
	if c.MaxUDPFlows <= 0 {
		c.MaxUDPFlows = DefaultMaxUDPFlows
	}
	if c.MaxFlowsPerPeer <= 0 {
		c.MaxFlowsPerPeer = DefaultMaxFlowsPerPeer
	}
	if c.UDPIdle <= 0 {
		c.UDPIdle = DefaultUDPIdle
	}
	if c.EgressDial == nil {
		c.EgressDial = dialHost
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// dialHost is the default EgressDial: a 10 s timeout, and no keep-alive
// probes to loopback targets, where a peer that goes away is noticed by the
// kernel at once and the probes' four setsockopt calls are a measurable
// part of what a short flow costs.
func dialHost(ctx context.Context, network, address string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if ap, err := netip.ParseAddrPort(address); err == nil && ap.Addr().IsLoopback() {
		d.KeepAlive = -1
	}
	return d.DialContext(ctx, network, address)
}

// MACFromIdentity derives a stable, locally administered unicast MAC from
// an endpoint's identity and its first inner address, so restarts keep the
// MAC (and peers' ARP caches stay right) while two ends of one tunnel,
// even with the same identity on loopback, differ.
func MACFromIdentity(identity netip.Addr, addrs []netip.Prefix) net.HardwareAddr {
	h := sha256.New()
	h.Write([]byte("geneve64 mac\x00"))
	h.Write(identity.AsSlice())
	if len(addrs) > 0 {
		h.Write(addrs[0].Addr().AsSlice())
	}
	sum := h.Sum(nil)
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02 // unicast, locally administered
	return mac
}

// Header sizes for InnerMTU.
const (
	ipv4HeaderLen     = 20
	ipv6HeaderLen     = 40
	udpHeaderLen      = 8
	ethernetHeaderLen = 14
)

// InnerMTU is the largest inner IP packet that fits an outer path MTU:
// outer IP and UDP headers, the tunnel's own overhead (GENEVE header and
// options) and, for Ethernet payloads, the inner Ethernet header come off.
// When IPv6 runs inside and the result is below 1280, it returns 1280 and
// the outer path must fragment.
func InnerMTU(pathMTU int, outerIPv6 bool, tunnelOverhead int, payload Payload, innerIPv6 bool) int {
	mtu := pathMTU - udpHeaderLen - tunnelOverhead
	if outerIPv6 {
		mtu -= ipv6HeaderLen
	} else {
		mtu -= ipv4HeaderLen
	}
	if payload == Ethernet {
		mtu -= ethernetHeaderLen
	}
	if innerIPv6 && mtu < 1280 {
		return 1280
	}
	return mtu
}
