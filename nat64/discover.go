package nat64

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"golang.org/x/net/dns/dnsmessage"

	"geneve64/internal/dnsclient"
)

// The RFC 7050 well-known name and the two well-known IPv4 addresses a DNS64
// synthesizes AAAA records from.
const ipv4onlyName = "ipv4only.arpa."

var (
	wka1 = netip.AddrFrom4([4]byte{192, 0, 0, 170})
	wka2 = netip.AddrFrom4([4]byte{192, 0, 0, 171})
)

// ErrNoNAT64 means discovery found no NAT64 prefix: the resolver returned no
// synthesized AAAA record for ipv4only.arpa, or none with a well-known
// address in it.
var ErrNoNAT64 = errors.New("nat64: no NAT64 prefix discovered (ipv4only.arpa has no synthesized AAAA)")

// DiscoverPrefixes finds the network's NAT64 prefixes by RFC 7050: it asks
// for the AAAA records of ipv4only.arpa and derives each prefix, and its
// length, from where 192.0.0.170 or 192.0.0.171 sits in the answer.
//
// server is a DNS server as "host" or "host:port" (port 53 by default),
// asked over UDP with a fall-back to TCP for truncated answers; "" means the
// system resolver.
func DiscoverPrefixes(ctx context.Context, server string) ([]netip.Prefix, error) {
	var addrs []netip.Addr
	var err error
	if server == "" {
		addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip6", ipv4onlyName)
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, fmt.Errorf("%w: system resolver: %v", ErrNoNAT64, err)
		}
	} else {
		addrs, err = dnsclient.Lookup(ctx, dnsclient.Server(server), ipv4onlyName, dnsmessage.TypeAAAA)
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, fmt.Errorf("%w: %s does not exist (NXDOMAIN)", ErrNoNAT64, ipv4onlyName)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("nat64: discovering prefix: %w", err)
	}
	return PrefixesFromAAAA(addrs)
}

// PrefixesFromAAAA derives NAT64 prefixes from the AAAA records of
// ipv4only.arpa (RFC 7050 section 3). For each record it tries every RFC 6052
// prefix length and keeps those at which a well-known address appears. Where
// one record admits several lengths, a length at which the records show both
// well-known addresses wins, then /96, then the longest: RFC 7050 asks for the
// second well-known address to settle exactly this ambiguity.
func PrefixesFromAAAA(addrs []netip.Addr) ([]netip.Prefix, error) {
	type candidate struct {
		prefix netip.Prefix
		seen   [2]bool
	}
	var cands []candidate
	perAddr := make([][]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		var ps []netip.Prefix
		for _, bits := range []int{96, 64, 56, 48, 40, 32} {
			p := netip.PrefixFrom(a, bits).Masked()
			v4, err := Extract(p, a)
			if err != nil || (v4 != wka1 && v4 != wka2) {
				continue
			}
			ps = append(ps, p)
			i := slices.IndexFunc(cands, func(c candidate) bool { return c.prefix == p })
			if i < 0 {
				cands = append(cands, candidate{prefix: p})
				i = len(cands) - 1
			}
			if v4 == wka1 {
				cands[i].seen[0] = true
			} else {
				cands[i].seen[1] = true
			}
		}
		if len(ps) > 0 {
			perAddr = append(perAddr, ps)
		}
	}
	if len(perAddr) == 0 {
		return nil, fmt.Errorf("%w: answer %v", ErrNoNAT64, addrs)
	}
	var out []netip.Prefix
	for _, ps := range perAddr {
		best := ps[0] // the longest, by the order tried
		for _, p := range ps {
			i := slices.IndexFunc(cands, func(c candidate) bool { return c.prefix == p })
			if cands[i].seen[0] && cands[i].seen[1] {
				best = p
				break
			}
		}
		if !slices.Contains(out, best) {
			out = append(out, best)
		}
	}
	return out, nil
}
