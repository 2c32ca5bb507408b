package stack

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
)

// An EgressRule names destinations of egress flows: a prefix and a port
// range (any port when both are 0). It is what --egress-allow and
// --egress-deny take.
type EgressRule struct {
	Prefix           netip.Prefix
	FromPort, ToPort uint16
}

// ErrEgressRule: a rule that does not parse.
var ErrEgressRule = errors.New("stack: bad egress rule")

// ParseEgressRule parses "CIDR[:PORT[-PORT]]", e.g. "10.0.0.0/8",
// "192.0.2.7/32:443", "2001:db8::/32:8000-8099". A bare address stands for
// itself alone, without a port: in IPv6 a port could not be told apart.
func ParseEgressRule(s string) (EgressRule, error) {
	bad := func(why string) (EgressRule, error) {
		return EgressRule{}, fmt.Errorf("%w %q: %s (want CIDR[:PORT[-PORT]], e.g. 10.0.0.0/8:443)", ErrEgressRule, s, why)
	}
	cidr, ports := s, ""
	if slash := strings.IndexByte(s, '/'); slash >= 0 {
		if colon := strings.IndexByte(s[slash:], ':'); colon >= 0 {
			cidr, ports = s[:slash+colon], s[slash+colon+1:]
		}
	} else if a, err := netip.ParseAddr(s); err == nil {
		return EgressRule{Prefix: netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())}, nil
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return bad(fmt.Sprintf("%q is not a CIDR prefix", cidr))
	}
	r := EgressRule{Prefix: p.Masked()}
	if r.Prefix.Addr().Is4In6() {
		r.Prefix = netip.PrefixFrom(r.Prefix.Addr().Unmap(), r.Prefix.Bits()-96)
	}
	if ports == "" {
		if strings.HasSuffix(s, ":") {
			return bad("empty port")
		}
		return r, nil
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	from, err1 := strconv.ParseUint(lo, 10, 16)
	to := from
	var err2 error
	if isRange {
		to, err2 = strconv.ParseUint(hi, 10, 16)
	}
	if err1 != nil || err2 != nil || from == 0 || to < from {
		return bad(fmt.Sprintf("port %q: want 1..65535 or a range LOW-HIGH", ports))
	}
	r.FromPort, r.ToPort = uint16(from), uint16(to)
	return r, nil
}

// String formats r as ParseEgressRule reads it.
func (r EgressRule) String() string {
	switch {
	case r.FromPort == 0:
		return r.Prefix.String()
	case r.FromPort == r.ToPort:
		return fmt.Sprintf("%s:%d", r.Prefix, r.FromPort)
	}
	return fmt.Sprintf("%s:%d-%d", r.Prefix, r.FromPort, r.ToPort)
}

// Matches reports whether dst is among the destinations r names.
func (r EgressRule) Matches(dst netip.AddrPort) bool {
	return r.Prefix.Contains(dst.Addr().Unmap()) && (r.FromPort == 0 || (dst.Port() >= r.FromPort && dst.Port() <= r.ToPort))
}

// An EgressRefusal is why the egress refused a flow: a TCP flow once, at
// its SYN; a UDP flow for each datagram, since a refused flow keeps no
// state.
type EgressRefusal uint8

// The reasons, in the order the policy checks them.
const (
	RefusedDenied      EgressRefusal = iota // an --egress-deny rule, or the endpoint's own listener
	RefusedLoopback                         // 127.0.0.0/8, ::1
	RefusedLinkLocal                        // 169.254.0.0/16 (cloud metadata), fe80::/10
	RefusedMulticast                        // 224.0.0.0/4, ff00::/8
	RefusedBroadcast                        // 255.255.255.255
	RefusedUnspecified                      // 0.0.0.0/8, ::
	RefusedNotAllowed                       // outside the --egress-allow rules
	RefusedLimit                            // a flow limit (flows, handshakes, per-peer share)
	numRefusals
)

var refusalNames = [numRefusals]string{"denied", "loopback", "link-local", "multicast", "broadcast", "unspecified", "not-allowed", "limit"}

// String is the reason as metrics label it.
func (r EgressRefusal) String() string {
	if r < numRefusals {
		return refusalNames[r]
	}
	return "refusal-" + strconv.Itoa(int(r))
}

// EgressRefusals lists every reason.
func EgressRefusals() []EgressRefusal {
	out := make([]EgressRefusal, numRefusals)
	for i := range out {
		out[i] = EgressRefusal(i)
	}
	return out
}

// special is an address range the egress refuses unless an allow rule
// inside it opens part of it: what a peer must never reach on the server's
// host or its link by default.
type special struct {
	prefix netip.Prefix
	why    EgressRefusal
}

var specials = []special{
	{netip.MustParsePrefix("127.0.0.0/8"), RefusedLoopback},
	{netip.MustParsePrefix("::1/128"), RefusedLoopback},
	{netip.MustParsePrefix("169.254.0.0/16"), RefusedLinkLocal},
	{netip.MustParsePrefix("fe80::/10"), RefusedLinkLocal},
	{netip.MustParsePrefix("224.0.0.0/4"), RefusedMulticast},
	{netip.MustParsePrefix("ff00::/8"), RefusedMulticast},
	{netip.MustParsePrefix("255.255.255.255/32"), RefusedBroadcast},
	{netip.MustParsePrefix("0.0.0.0/8"), RefusedUnspecified},
	{netip.MustParsePrefix("::/128"), RefusedUnspecified},
}

// egressPolicy decides which destinations egress flows may reach.
//
// Deny rules win over everything. An allow rule inside one of the special
// ranges (loopback, link-local, ...) opens that part of it; allow rules for
// ordinary addresses narrow ordinary destinations to themselves. With no
// such rule, every ordinary destination is allowed.
type egressPolicy struct {
	deny    []EgressRule
	open    []EgressRule // allow rules inside a special range
	narrow  []EgressRule // allow rules for ordinary addresses
	refused [numRefusals]atomic.Uint64
}

func newEgressPolicy(allow, deny []EgressRule) *egressPolicy {
	p := &egressPolicy{deny: deny}
	for _, r := range allow {
		if specialOf(r.Prefix) != nil {
			p.open = append(p.open, r)
		} else {
			p.narrow = append(p.narrow, r)
		}
	}
	return p
}

// specialOf returns the special range that holds all of prefix, or nil.
func specialOf(prefix netip.Prefix) *special {
	for i := range specials {
		s := &specials[i]
		if s.prefix.Bits() <= prefix.Bits() && s.prefix.Contains(prefix.Addr()) {
			return s
		}
	}
	return nil
}

// check returns whether a flow to dst may go, and if not, why; refusals
// are counted.
func (p *egressPolicy) check(dst netip.AddrPort) (EgressRefusal, bool) {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	why, ok := p.decide(dst)
	if !ok {
		p.refused[why].Add(1)
	}
	return why, ok
}

func (p *egressPolicy) decide(dst netip.AddrPort) (EgressRefusal, bool) {
	if matchesAny(p.deny, dst) {
		return RefusedDenied, false
	}
	if s := specialOf(netip.PrefixFrom(dst.Addr(), dst.Addr().BitLen())); s != nil {
		return s.why, matchesAny(p.open, dst)
	}
	if len(p.narrow) > 0 && !matchesAny(p.narrow, dst) {
		return RefusedNotAllowed, false
	}
	return 0, true
}

func matchesAny(rules []EgressRule, dst netip.AddrPort) bool {
	for _, r := range rules {
		if r.Matches(dst) {
			return true
		}
	}
	return false
}
