package stack

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// maxDNSQueries bounds the DNS queries (UDP) and connections (TCP) the
// egress serves at once.
const maxDNSQueries = 64

// serveDNS answers DNS on port 53 of every inner address, UDP and TCP, by
// asking the host's resolver, so a client can name this end with --dns.
func (e *egress) serveDNS() error {
	for _, a := range e.st.cfg.Addrs {
		addr := net.JoinHostPort(a.Addr().String(), "53")
		pc, err := e.st.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		ln, err := e.st.Listen("tcp", addr)
		if err != nil {
			pc.Close()
			return err
		}
		e.dns = append(e.dns, pc, ln)
		e.wg.Add(2)
		go e.serveDNSUDP(pc)
		go e.serveDNSTCP(ln)
	}
	return nil
}

func (e *egress) serveDNSUDP(pc net.PacketConn) {
	defer e.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		// Each query waits for the host's resolver on a goroutine of its
		// own, at most maxDNSQueries at once: a flood of queries is
		// dropped, as a busy resolver drops it, and never grows without
		// bound.
		select {
		case e.dnsSlots <- struct{}{}:
		default:
			continue
		}
		query := append([]byte(nil), buf[:n]...)
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer func() { <-e.dnsSlots }()
			ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
			defer cancel()
			if resp, err := answerDNS(ctx, query, 1232, e.innerFor); err == nil {
				pc.WriteTo(resp, from)
			}
		}()
	}
}

func (e *egress) serveDNSTCP(ln net.Listener) {
	defer e.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		select {
		case e.dnsSlots <- struct{}{}:
		default:
			c.Close()
			continue
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer func() { <-e.dnsSlots }()
			defer c.Close()
			for {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				var n [2]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				query := make([]byte, binary.BigEndian.Uint16(n[:]))
				if _, err := io.ReadFull(c, query); err != nil {
					return
				}
				ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
				resp, err := answerDNS(ctx, query, 65535, e.innerFor)
				cancel()
				if err != nil {
					return
				}
				if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...)); err != nil {
					return
				}
			}
		}()
	}
}

// innerFor maps the host's loopback addresses to this end's inner address
// of the same family: a flow to that address reaches the host's loopback,
// so "localhost" on the far side means the far host, as a user expects.
func (e *egress) innerFor(a netip.Addr) netip.Addr {
	if !a.IsLoopback() || !e.st.cfg.EgressLoopback {
		return a
	}
	for _, p := range e.st.cfg.Addrs {
		if p.Addr().Is4() == a.Is4() {
			return p.Addr()
		}
	}
	return a
}

// answerDNS answers one query with the host's resolver, passing addresses
// through rewrite. Only the first question is answered, as every resolver
// in practice asks one.
func answerDNS(ctx context.Context, query []byte, maxLen int, rewrite func(netip.Addr) netip.Addr) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil, errors.New("not a DNS query")
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	answers, rcode := lookup(ctx, q, rewrite)
	rh.RCode = rcode
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	for _, a := range answers {
		rrh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 30}
		switch body := a.(type) {
		case *dnsmessage.AResource:
			err = b.AResource(rrh, *body)
		case *dnsmessage.AAAAResource:
			err = b.AAAAResource(rrh, *body)
		case *dnsmessage.PTRResource:
			err = b.PTRResource(rrh, *body)
		case *dnsmessage.TXTResource:
			err = b.TXTResource(rrh, *body)
		case *dnsmessage.MXResource:
			err = b.MXResource(rrh, *body)
		case *dnsmessage.CNAMEResource:
			err = b.CNAMEResource(rrh, *body)
		}
		if err != nil {
			return nil, err
		}
	}
	resp, err := b.Finish()
	if err != nil {
		return nil, err
	}
	if len(resp) > maxLen {
		// Too big for UDP: say so, and the client asks over TCP.
		rh.Truncated = true
		rh.RCode = dnsmessage.RCodeSuccess
		tb := dnsmessage.NewBuilder(nil, rh)
		tb.StartQuestions()
		tb.Question(q)
		return tb.Finish()
	}
	return resp, nil
}

func lookup(ctx context.Context, q dnsmessage.Question, rewrite func(netip.Addr) netip.Addr) ([]dnsmessage.ResourceBody, dnsmessage.RCode) {
	r := net.DefaultResolver
	name := strings.TrimSuffix(q.Name.String(), ".")
	var out []dnsmessage.ResourceBody
	var err error
	switch q.Type {
	case dnsmessage.TypeA, dnsmessage.TypeAAAA:
		family := "ip4"
		if q.Type == dnsmessage.TypeAAAA {
			family = "ip6"
		}
		var addrs []netip.Addr
		addrs, err = r.LookupNetIP(ctx, family, name)
		for _, a := range addrs {
			if a = rewrite(a.Unmap()); a.Is4() {
				out = append(out, &dnsmessage.AResource{A: a.As4()})
			} else {
				out = append(out, &dnsmessage.AAAAResource{AAAA: a.As16()})
			}
		}
		if notFound(err) {
			// The name may exist with the other family only: that is an
			// empty answer, not a name that does not exist.
			other := "ip6"
			if family == "ip6" {
				other = "ip4"
			}
			if as, err2 := r.LookupNetIP(ctx, other, name); err2 == nil && len(as) > 0 {
				return nil, dnsmessage.RCodeSuccess
			}
		}
	case dnsmessage.TypePTR:
		var names []string
		names, err = r.LookupAddr(ctx, ptrToAddr(name))
		for _, n := range names {
			if dn, e := dnsmessage.NewName(dotted(n)); e == nil {
				out = append(out, &dnsmessage.PTRResource{PTR: dn})
			}
		}
	case dnsmessage.TypeTXT:
		var txts []string
		txts, err = r.LookupTXT(ctx, name)
		if len(txts) > 0 {
			out = append(out, &dnsmessage.TXTResource{TXT: txts})
		}
	case dnsmessage.TypeMX:
		var mxs []*net.MX
		mxs, err = r.LookupMX(ctx, name)
		for _, mx := range mxs {
			if dn, e := dnsmessage.NewName(dotted(mx.Host)); e == nil {
				out = append(out, &dnsmessage.MXResource{Pref: mx.Pref, MX: dn})
			}
		}
	case dnsmessage.TypeCNAME:
		var cname string
		cname, err = r.LookupCNAME(ctx, name)
		if dn, e := dnsmessage.NewName(dotted(cname)); e == nil && err == nil {
			out = append(out, &dnsmessage.CNAMEResource{CNAME: dn})
		}
	default:
		return nil, dnsmessage.RCodeNotImplemented
	}
	switch {
	case err == nil:
		return out, dnsmessage.RCodeSuccess
	case notFound(err):
		return nil, dnsmessage.RCodeNameError
	default:
		return nil, dnsmessage.RCodeServerFailure
	}
}

func notFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

func dotted(n string) string {
	if strings.HasSuffix(n, ".") {
		return n
	}
	return n + "."
}

// ptrToAddr turns "4.3.2.1.in-addr.arpa" (or an ip6.arpa name) back into
// the address it names, or returns the name unchanged.
func ptrToAddr(name string) string {
	name = strings.ToLower(name)
	if s, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		p := strings.Split(s, ".")
		if len(p) == 4 {
			return p[3] + "." + p[2] + "." + p[1] + "." + p[0]
		}
	}
	if s, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		nibbles := strings.Split(s, ".")
		if len(nibbles) == 32 {
			var b strings.Builder
			for i := 31; i >= 0; i-- {
				b.WriteString(nibbles[i])
				if i%4 == 0 && i > 0 {
					b.WriteByte(':')
				}
			}
			if a, err := netip.ParseAddr(b.String()); err == nil {
				return a.String()
			}
		}
	}
	return name
}
