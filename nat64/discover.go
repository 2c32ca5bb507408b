package nat64

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
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
		addrs, err = queryAAAA(ctx, server, ipv4onlyName)
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

// queryAAAA asks one DNS server for name's AAAA records.
func queryAAAA(ctx context.Context, server, name string) ([]netip.Addr, error) {
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "53")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	id := uint16(rand.Uint32())
	q := dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeAAAA, Class: dnsmessage.ClassINET}
	msg := dnsmessage.Message{Header: dnsmessage.Header{ID: id, RecursionDesired: true}, Questions: []dnsmessage.Question{q}}
	query, err := msg.Pack()
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	resp, err := exchangeUDP(ctx, &d, server, query)
	if err != nil {
		return nil, err
	}
	addrs, truncated, err := parseAAAA(resp, id, q)
	if err == nil && truncated {
		if resp, err = exchangeTCP(ctx, &d, server, query); err != nil {
			return nil, err
		}
		addrs, _, err = parseAAAA(resp, id, q)
	}
	return addrs, err
}

func exchangeUDP(ctx context.Context, d *net.Dialer, server string, query []byte) ([]byte, error) {
	c, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, 1232)
	for {
		// Datagrams with another ID are stale or spoofed: keep waiting.
		n, err := c.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("DNS over UDP to %s: %w", server, err)
		}
		if n >= 2 && binary.BigEndian.Uint16(buf) == binary.BigEndian.Uint16(query) {
			return buf[:n], nil
		}
	}
}

func exchangeTCP(ctx context.Context, d *net.Dialer, server string, query []byte) ([]byte, error) {
	c, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	framed := binary.BigEndian.AppendUint16(nil, uint16(len(query)))
	if _, err := c.Write(append(framed, query...)); err != nil {
		return nil, err
	}
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return nil, fmt.Errorf("DNS over TCP to %s: %w", server, err)
	}
	resp := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(c, resp); err != nil {
		return nil, fmt.Errorf("DNS over TCP to %s: %w", server, err)
	}
	return resp, nil
}

// parseAAAA checks that resp answers q and returns its AAAA records.
func parseAAAA(resp []byte, id uint16, q dnsmessage.Question) (addrs []netip.Addr, truncated bool, err error) {
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil {
		return nil, false, fmt.Errorf("DNS answer: %w", err)
	}
	if h.ID != id || !h.Response {
		return nil, false, fmt.Errorf("DNS answer: ID %d is not a response to query %d", h.ID, id)
	}
	if h.Truncated {
		return nil, true, nil
	}
	switch h.RCode {
	case dnsmessage.RCodeSuccess:
	case dnsmessage.RCodeNameError:
		return nil, false, fmt.Errorf("%w: %s does not exist (NXDOMAIN)", ErrNoNAT64, q.Name)
	default:
		return nil, false, fmt.Errorf("DNS answer: rcode %s", h.RCode)
	}
	got, err := p.Question()
	if err != nil || got.Type != q.Type || !strings.EqualFold(got.Name.String(), q.Name.String()) {
		return nil, false, fmt.Errorf("DNS answer: question %v does not match %v", got, q)
	}
	if err := p.SkipAllQuestions(); err != nil {
		return nil, false, fmt.Errorf("DNS answer: %w", err)
	}
	for {
		ah, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("DNS answer: %w", err)
		}
		if ah.Type != dnsmessage.TypeAAAA || ah.Class != dnsmessage.ClassINET {
			if err := p.SkipAnswer(); err != nil {
				return nil, false, fmt.Errorf("DNS answer: %w", err)
			}
			continue
		}
		r, err := p.AAAAResource()
		if err != nil {
			return nil, false, fmt.Errorf("DNS answer: %w", err)
		}
		addrs = append(addrs, netip.AddrFrom16(r.AAAA))
	}
	return addrs, false, nil
}
