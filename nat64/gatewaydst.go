package nat64

import (
	"net/netip"
	"strconv"
	"sync/atomic"
)

// A GatewayRefusal is why a gateway would not relay to a destination.
type GatewayRefusal uint8

// Destinations a gateway never relays to: the gateway's own host and
// link, what no unicast packet should reach, and (unless allowed) private
// networks beside it. Relaying there would let any allowed host, or with
// an open relay anyone, reach services on the gateway or its site from the
// gateway's own address, or make a packet loop through the gateway.
const (
	RefusedLoopback    GatewayRefusal = iota // 127.0.0.0/8, ::1
	RefusedUnspecified                       // 0.0.0.0/8, ::
	RefusedLinkLocal                         // 169.254.0.0/16, fe80::/10
	RefusedMulticast                         // 224.0.0.0/4, ff00::/8
	RefusedBroadcast                         // 255.255.255.255
	RefusedReserved                          // 240.0.0.0/4, IPv4-mapped IPv6
	RefusedPrivate                           // 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7 (unless allowed)
	RefusedOwn                               // the gateway's own address, or its NAT64 prefix
	RefusedHopLimit                          // a TTL or hop limit that would reach 0
	numGatewayRefusals
)

var gatewayRefusalNames = [numGatewayRefusals]string{"loopback", "unspecified", "link-local", "multicast",
	"broadcast", "reserved", "private", "own-address", "hop-limit"}

// String is the reason as metrics label it.
func (r GatewayRefusal) String() string {
	if r < numGatewayRefusals {
		return gatewayRefusalNames[r]
	}
	return "refusal-" + strconv.Itoa(int(r))
}

// GatewayRefusals lists every reason.
func GatewayRefusals() []GatewayRefusal {
	out := make([]GatewayRefusal, numGatewayRefusals)
	for i := range out {
		out[i] = GatewayRefusal(i)
	}
	return out
}

// GatewayRefusalCounts counts a gateway's forbidden destinations by reason.
type GatewayRefusalCounts [numGatewayRefusals]atomic.Uint64

// Load returns the count for why.
func (c *GatewayRefusalCounts) Load(why GatewayRefusal) uint64 {
	if why >= numGatewayRefusals {
		return 0
	}
	return c[why].Load()
}

// addrClass is a range of addresses the gateway refuses, and why.
type addrClass struct {
	p   netip.Prefix
	why GatewayRefusal
}

var (
	v4Classes = []addrClass{
		{netip.MustParsePrefix("127.0.0.0/8"), RefusedLoopback},
		{netip.MustParsePrefix("0.0.0.0/8"), RefusedUnspecified},
		{netip.MustParsePrefix("169.254.0.0/16"), RefusedLinkLocal},
		{netip.MustParsePrefix("224.0.0.0/4"), RefusedMulticast},
		{netip.MustParsePrefix("255.255.255.255/32"), RefusedBroadcast},
		{netip.MustParsePrefix("240.0.0.0/4"), RefusedReserved},
		{netip.MustParsePrefix("10.0.0.0/8"), RefusedPrivate},
		{netip.MustParsePrefix("172.16.0.0/12"), RefusedPrivate},
		{netip.MustParsePrefix("192.168.0.0/16"), RefusedPrivate},
		{netip.MustParsePrefix("100.64.0.0/10"), RefusedPrivate},
	}
	v6Classes = []addrClass{
		{netip.MustParsePrefix("::1/128"), RefusedLoopback},
		{netip.MustParsePrefix("::/128"), RefusedUnspecified},
		{netip.MustParsePrefix("fe80::/10"), RefusedLinkLocal},
		{netip.MustParsePrefix("ff00::/8"), RefusedMulticast},
		{netip.MustParsePrefix("::ffff:0:0/96"), RefusedReserved},
		{netip.MustParsePrefix("fc00::/7"), RefusedPrivate},
	}
)

// destination decides whether the gateway may relay to a: an IPv4
// address leaving for the internet, or an IPv6 host on its site.
func (g *GatewayRules) destination(a netip.Addr) (GatewayRefusal, bool) {
	if a == g.IPv4 || (a.Is6() && g.Prefix.Contains(a)) {
		return RefusedOwn, false
	}
	classes := v4Classes
	if a.Is6() {
		classes = v6Classes
	}
	for _, c := range classes {
		if c.p.Contains(a) {
			if c.why == RefusedPrivate && g.AllowPrivate {
				return 0, true
			}
			return c.why, false
		}
	}
	return 0, true
}

// refuse counts a refusal and returns the drop.
func (g *GatewayRules) refuse(why GatewayRefusal) (netip.AddrPort, netip.AddrPort, DropReason, bool) {
	if g.Refused != nil {
		g.Refused[why].Add(1)
	}
	return g.drop(DropForbidden)
}
