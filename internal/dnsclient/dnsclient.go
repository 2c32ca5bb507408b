// Package dnsclient asks one DNS server for address records, over UDP with
// a fall-back to TCP for truncated answers. It is shared by NAT64 prefix
// discovery (package nat64) and the netstack's resolver (package stack),
// which must not import each other; a plain *net.Resolver will not do for
// either, since it reads the host's own hosts file and configuration.
package dnsclient

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DialFunc connects to the DNS server over network "udp" or "tcp".
type DialFunc func(ctx context.Context, network string) (net.Conn, error)

// Server returns a DialFunc for a server given as "host" or "host:port"
// (port 53 by default) on the host's network.
func Server(server string) DialFunc {
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "53")
	}
	return func(ctx context.Context, network string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}
}

// Lookup asks for name's records of type qtype (A or AAAA) and returns the
// addresses in the answer. A name that does not exist gives a *net.DNSError
// with IsNotFound set; a name without such records gives no addresses and
// no error.
func Lookup(ctx context.Context, dial DialFunc, name string, qtype dnsmessage.Type) ([]netip.Addr, error) {
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	qname, err := dnsmessage.NewName(name)
	if err != nil {
		return nil, &net.DNSError{Err: "invalid name", Name: name}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	id := uint16(rand.Uint32())
	q := dnsmessage.Question{Name: qname, Type: qtype, Class: dnsmessage.ClassINET}
	msg := dnsmessage.Message{Header: dnsmessage.Header{ID: id, RecursionDesired: true}, Questions: []dnsmessage.Question{q}}
	query, err := msg.Pack()
	if err != nil {
		return nil, err
	}
	resp, err := exchangeUDP(ctx, dial, query)
	if err != nil {
		return nil, err
	}
	addrs, truncated, err := parse(resp, id, q)
	if err == nil && truncated {
		if resp, err = exchangeTCP(ctx, dial, query); err != nil {
			return nil, err
		}
		addrs, _, err = parse(resp, id, q)
	}
	return addrs, err
}

// retransmit is how long exchangeUDP waits for an answer before it sends
// the query again: UDP queries and answers get lost, and resolvers resend.
const retransmit = time.Second

func exchangeUDP(ctx context.Context, dial DialFunc, query []byte) ([]byte, error) {
	c, err := dial(ctx, "udp")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	buf := make([]byte, 1232)
	for {
		if _, err := c.Write(query); err != nil {
			return nil, err
		}
		wait := time.Now().Add(retransmit)
		if wait.After(deadline) {
			wait = deadline
		}
		c.SetReadDeadline(wait)
		for {
			// A datagram with another ID is stale or spoofed: keep waiting.
			n, err := c.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && time.Now().Before(deadline) {
					break // no answer yet: ask again
				}
				return nil, fmt.Errorf("DNS over UDP to %s: %w", c.RemoteAddr(), err)
			}
			if n >= 2 && binary.BigEndian.Uint16(buf) == binary.BigEndian.Uint16(query) {
				return buf[:n], nil
			}
		}
	}
}

func exchangeTCP(ctx context.Context, dial DialFunc, query []byte) ([]byte, error) {
	c, err := dial(ctx, "tcp")
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
		return nil, fmt.Errorf("DNS over TCP to %s: %w", c.RemoteAddr(), err)
	}
	resp := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(c, resp); err != nil {
		return nil, fmt.Errorf("DNS over TCP to %s: %w", c.RemoteAddr(), err)
	}
	return resp, nil
}

// parse checks that resp answers q and returns its address records.
func parse(resp []byte, id uint16, q dnsmessage.Question) (addrs []netip.Addr, truncated bool, err error) {
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
	name := strings.TrimSuffix(q.Name.String(), ".")
	switch h.RCode {
	case dnsmessage.RCodeSuccess:
	case dnsmessage.RCodeNameError:
		return nil, false, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	default:
		return nil, false, &net.DNSError{Err: "server answered " + h.RCode.String(), Name: name}
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
			return addrs, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("DNS answer: %w", err)
		}
		switch {
		case ah.Type == dnsmessage.TypeAAAA && q.Type == dnsmessage.TypeAAAA:
			r, err := p.AAAAResource()
			if err != nil {
				return nil, false, fmt.Errorf("DNS answer: %w", err)
			}
			addrs = append(addrs, netip.AddrFrom16(r.AAAA))
		case ah.Type == dnsmessage.TypeA && q.Type == dnsmessage.TypeA:
			r, err := p.AResource()
			if err != nil {
				return nil, false, fmt.Errorf("DNS answer: %w", err)
			}
			addrs = append(addrs, netip.AddrFrom4(r.A))
		default: // CNAMEs and the like: the resolver already followed them
			if err := p.SkipAnswer(); err != nil {
				return nil, false, fmt.Errorf("DNS answer: %w", err)
			}
		}
	}
}
