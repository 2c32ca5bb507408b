package nat64

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dns64 is a small DNS64 on loopback, real UDP and TCP sockets on one port:
// it answers AAAA queries for ipv4only.arpa with the well-known addresses
// synthesized under its prefixes.
type dns64 struct {
	addr      string
	answers   []netip.Addr
	rcode     dnsmessage.RCode
	truncUDP  bool // answer UDP with TC set, forcing TCP
	udpJunk   bool // send a datagram with the wrong ID first
	udpCount  atomic.Int32
	tcpCount  atomic.Int32
	questions chan string
}

func startDNS64(t *testing.T, d *dns64) *dns64 {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ; i++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if i == 10 {
			t.Fatal(err)
		}
	}
	d.addr = pc.LocalAddr().String()
	d.questions = make(chan string, 10)
	t.Cleanup(func() { pc.Close(); ln.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			d.udpCount.Add(1)
			if d.udpJunk {
				junk := d.reply(t, buf[:n], false)
				junk[0]++
				pc.WriteTo(junk, from)
			}
			pc.WriteTo(d.reply(t, buf[:n], d.truncUDP), from)
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d.tcpCount.Add(1)
			var n [2]byte
			if _, err := io.ReadFull(c, n[:]); err == nil {
				q := make([]byte, binary.BigEndian.Uint16(n[:]))
				if _, err := io.ReadFull(c, q); err == nil {
					r := d.reply(t, q, false)
					c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(r))), r...))
				}
			}
			c.Close()
		}
	}()
	return d
}

func (d *dns64) reply(t *testing.T, query []byte, truncated bool) []byte {
	var m dnsmessage.Message
	if err := m.Unpack(query); err != nil {
		t.Error(err)
		return nil
	}
	select {
	case d.questions <- m.Questions[0].Name.String() + " " + m.Questions[0].Type.String():
	default:
	}
	m.Header.Response = true
	m.Header.RCode = d.rcode
	m.Header.Truncated = truncated
	if !truncated {
		for _, a := range d.answers {
			m.Answers = append(m.Answers, dnsmessage.Resource{
				Header: dnsmessage.ResourceHeader{Name: m.Questions[0].Name, Type: dnsmessage.TypeAAAA, Class: dnsmessage.ClassINET, TTL: 60},
				Body:   &dnsmessage.AAAAResource{AAAA: a.As16()},
			})
		}
	}
	b, err := m.Pack()
	if err != nil {
		t.Error(err)
	}
	return b
}

func synth(t *testing.T, prefix string, v4 netip.Addr) netip.Addr {
	a, err := Embed(netip.MustParsePrefix(prefix), v4)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDiscoverOverUDP(t *testing.T) {
	for _, prefix := range []string{"64:ff9b::/96", "2001:db8:122::/48", "2001:db8::/32", "2001:db8:122:344::/64", "64:ff9b:1:200::/56", "2001:db8:100::/40"} {
		t.Run(prefix, func(t *testing.T) {
			d := startDNS64(t, &dns64{answers: []netip.Addr{synth(t, prefix, wka1), synth(t, prefix, wka2)}, udpJunk: true})
			got, err := DiscoverPrefixes(context.Background(), d.addr)
			if err != nil {
				t.Fatal(err)
			}
			if want := []netip.Prefix{netip.MustParsePrefix(prefix)}; !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			if q := <-d.questions; q != "ipv4only.arpa. TypeAAAA" {
				t.Fatalf("asked %q", q)
			}
			if d.tcpCount.Load() != 0 {
				t.Fatal("used TCP without truncation")
			}
		})
	}
}

func TestDiscoverFallsBackToTCP(t *testing.T) {
	d := startDNS64(t, &dns64{answers: []netip.Addr{synth(t, "64:ff9b::/96", wka1)}, truncUDP: true})
	got, err := DiscoverPrefixes(context.Background(), d.addr)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []netip.Prefix{WellKnownPrefix}) || d.udpCount.Load() != 1 || d.tcpCount.Load() != 1 {
		t.Fatalf("got %v after %d UDP, %d TCP queries", got, d.udpCount.Load(), d.tcpCount.Load())
	}
}

func TestDiscoverNoNAT64(t *testing.T) {
	for name, d := range map[string]*dns64{
		"no AAAA":         {},
		"NXDOMAIN":        {rcode: dnsmessage.RCodeNameError},
		"not synthesized": {answers: []netip.Addr{netip.MustParseAddr("2001:db8::1")}},
	} {
		t.Run(name, func(t *testing.T) {
			startDNS64(t, d)
			_, err := DiscoverPrefixes(context.Background(), d.addr)
			if !errors.Is(err, ErrNoNAT64) {
				t.Fatalf("err = %v, want ErrNoNAT64", err)
			}
		})
	}
	d := startDNS64(t, &dns64{rcode: dnsmessage.RCodeServerFailure})
	if _, err := DiscoverPrefixes(context.Background(), d.addr); err == nil || !strings.Contains(err.Error(), "RCodeServerFailure") {
		t.Fatalf("SERVFAIL: %v", err)
	}
}

func TestDiscoverTimeout(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // never answers
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := DiscoverPrefixes(ctx, pc.LocalAddr().String()); err == nil {
		t.Fatal("no error from a silent server")
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("ignored the context deadline")
	}
}

func TestPrefixesFromAAAA(t *testing.T) {
	// Two prefixes at once, each with both well-known addresses.
	got, err := PrefixesFromAAAA([]netip.Addr{
		synth(t, "64:ff9b::/96", wka1), synth(t, "64:ff9b::/96", wka2),
		synth(t, "2001:db8:1::/48", wka1),
	})
	want := []netip.Prefix{WellKnownPrefix, netip.MustParsePrefix("2001:db8:1::/48")}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %v %v, want %v", got, err, want)
	}
	// RFC 7050's ambiguous case: a /96 prefix whose own bits 32..63 hold
	// 192.0.0.170, so every answer also reads as a /32 synthesis. Only the /96
	// reading shows both well-known addresses.
	p96 := "2001:db8:c000:aa::/96"
	a1, a2 := synth(t, p96, wka1), synth(t, p96, wka2)
	if v4, err := Extract(netip.MustParsePrefix("2001:db8::/32"), a2); err != nil || v4 != wka1 {
		t.Fatalf("test vector is not ambiguous: %s %v", v4, err)
	}
	amb, err := PrefixesFromAAAA([]netip.Addr{a1, a2})
	if err != nil || !slices.Equal(amb, []netip.Prefix{netip.MustParsePrefix(p96)}) {
		t.Fatalf("ambiguous: %v %v (from %s, %s)", amb, err, a1, a2)
	}
}
