package gateway

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"geneve64/nat64/udpbatch"
)

func TestDecrement(t *testing.T) {
	for _, tc := range []struct {
		in, out uint8
		ok      bool
	}{{64, 63, true}, {2, 1, true}, {1, 0, false}, {0, defaultHopLimit, true}, {255, 254, true}} {
		if out, ok := decrement(tc.in); out != tc.out || ok != tc.ok {
			t.Errorf("decrement(%d) = %d %v", tc.in, out, ok)
		}
	}
}

// TestInboundRuns: datagrams go as one GSO packet only while sender,
// destination, hop limit and size agree (a shorter one ends the run), each
// fits the site link, and the run stays within 64 datagrams.
func TestInboundRuns(t *testing.T) {
	g := &Gateway{cfg: Config{MTU: 1500}}
	a := netip.MustParseAddrPort("[64:ff9b::c633:6407]:6081")
	b := netip.MustParseAddrPort("[2001:db8:b::1]:6081")
	c := netip.MustParseAddrPort("[2001:db8:b::2]:6081")
	mk := func(specs ...any) ([]udpbatch.Message, []inboundResult) {
		var ms []udpbatch.Message
		var rs []inboundResult
		for i := 0; i < len(specs); i += 2 {
			ms = append(ms, udpbatch.Message{N: specs[i].(int)})
			rs = append(rs, inboundResult{src: a, dst: specs[i+1].(netip.AddrPort), hop: 63, ok: true})
		}
		return ms, rs
	}
	for _, tc := range []struct {
		name  string
		specs []any
		want  int
	}{
		{"same size", []any{1400, b, 1400, b, 1400, b}, 3},
		{"shorter last ends it", []any{1400, b, 900, b, 1400, b}, 2},
		{"larger breaks it", []any{900, b, 1400, b}, 1},
		{"another host", []any{1400, b, 1400, c}, 1},
		{"too big for the link", []any{1460, b, 1460, b}, 1},
	} {
		ms, rs := mk(tc.specs...)
		if got := g.run(ms, rs, 0); got != tc.want {
			t.Errorf("%s: run ends at %d, want %d", tc.name, got, tc.want)
		}
	}
	ms, rs := mk()
	for range 100 {
		ms = append(ms, udpbatch.Message{N: 1000})
		rs = append(rs, inboundResult{src: a, dst: b, hop: 63, ok: true})
	}
	if got := g.run(ms, rs, 0); got != 64 {
		t.Errorf("a long run ends at %d, want 64", got)
	}
	rs[5].hop = 62
	if got := g.run(ms, rs, 0); got != 5 {
		t.Errorf("another hop limit: run ends at %d, want 5", got)
	}
}

// TestAppendRun: one IPv6 UDP packet with every payload back to back, its
// length the sum, its checksum field the pseudo-header's uncomplemented
// sum (what the kernel finishes per segment), its hop limit the run's.
func TestAppendRun(t *testing.T) {
	g := &Gateway{}
	r := inboundResult{src: netip.MustParseAddrPort("[64:ff9b::c633:6407]:6081"), dst: netip.MustParseAddrPort("[2001:db8:b::1]:6081"), hop: 61}
	msgs := []udpbatch.Message{{Buf: []byte("abcd"), N: 4}, {Buf: []byte("ef"), N: 2}}
	p := g.appendRun(nil, msgs, &r)
	if len(p) != 40+8+6 || string(p[48:]) != "abcdef" || p[7] != 61 || binary.BigEndian.Uint16(p[4:]) != 14 || binary.BigEndian.Uint16(p[44:]) != 14 {
		t.Fatalf("packet % x", p)
	}
	s, d := r.src.Addr().As16(), r.dst.Addr().As16()
	sum := onesSum(onesSum(0, s[:]), d[:]) + 14 + protoUDP
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	if got := binary.BigEndian.Uint16(p[46:]); got != uint16(sum) {
		t.Fatalf("checksum field %#04x, want the pseudo-header sum %#04x", got, sum)
	}
}
