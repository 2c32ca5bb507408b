package nat64

import (
	"net/netip"
	"testing"

	"geneve64/geneve"
)

func gatewayPacket(t *testing.T, src, dst netip.Addr) []byte {
	t.Helper()
	opt, err := AppendOption(nil, Endpoints{Src: src, Dst: dst})
	if err != nil {
		t.Fatal(err)
	}
	// An unknown critical option too: a gateway is a transit device and must
	// not drop for it.
	opt, _ = geneve.AppendOption(opt, geneve.Option{Class: 0xfff0, Type: 0x81, Data: make([]byte, 12)})
	b, err := (&geneve.Header{Protocol: geneve.ProtocolEthernet, VNI: 42, OptionBytes: opt}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, make([]byte, 14)...)
}

func TestGatewayRules(t *testing.T) {
	var stats Stats
	g := &GatewayRules{
		Prefix:  WellKnownPrefix,
		IPv4:    netip.MustParseAddr("203.0.113.90"),
		Allowed: []netip.Prefix{netip.MustParsePrefix("2001:db8:b::/48")},
		Stats:   &stats,
	}
	if err := g.Check(); err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	hostB := netip.MustParseAddr("2001:db8:b::1")

	// The worked example of docs/PROTOCOL.md: A's packet arrives from A's
	// gateway and goes to B from A's gateway address under B's prefix.
	src, dst, _, ok := g.Inbound(ap("198.51.100.7:6081"), ap("203.0.113.90:6081"), gatewayPacket(t, idA, hostB))
	if !ok || src != ap("[64:ff9b::c633:6407]:6081") || dst != ap("[2001:db8:b::1]:6081") {
		t.Fatalf("inbound: %s → %s, %v", src, dst, ok)
	}
	// A client behind a plain NAT: its external port is kept.
	src, _, _, ok = g.Inbound(ap("192.0.2.50:40123"), ap("203.0.113.90:6081"), gatewayPacket(t, idClient, hostB))
	if !ok || src != ap("[64:ff9b::192.0.2.50]:40123") {
		t.Fatalf("inbound from NAT: %s %v", src, ok)
	}
	// B's reply leaves from the gateway's IPv4:6081 to the client's port.
	src, dst, _, ok = g.Outbound(ap("[2001:db8:b::1]:6081"), ap("[64:ff9b::192.0.2.50]:40123"), gatewayPacket(t, hostB, idClient))
	if !ok || src != ap("203.0.113.90:6081") || dst != ap("192.0.2.50:40123") {
		t.Fatalf("outbound: %s → %s, %v", src, dst, ok)
	}

	for _, tc := range []struct {
		name     string
		inbound  bool
		src, dst netip.AddrPort
		pkt      []byte
		want     DropReason
	}{
		{"in: destination not allowed", true, ap("192.0.2.1:6081"), ap("203.0.113.90:6081"), gatewayPacket(t, idA, netip.MustParseAddr("2001:db8:c::1")), DropNotAllowed},
		{"in: garbage", true, ap("192.0.2.1:6081"), ap("203.0.113.90:6081"), []byte("hello"), DropMalformed},
		{"in: no option", true, ap("192.0.2.1:6081"), ap("203.0.113.90:6081"), []byte{0, 0, 0x65, 0x58, 0, 0, 42, 0}, DropOption},
		{"in: other port", true, ap("192.0.2.1:6081"), ap("203.0.113.90:53"), gatewayPacket(t, idA, hostB), DropNotGENEVE},
		{"in: other address", true, ap("192.0.2.1:6081"), ap("203.0.113.91:6081"), gatewayPacket(t, idA, hostB), DropNotGENEVE},
		{"out: host not allowed", false, ap("[2001:db8:c::1]:6081"), ap("[64:ff9b::1.2.3.4]:6081"), gatewayPacket(t, netip.MustParseAddr("2001:db8:c::1"), idA), DropNotAllowed},
		{"out: other source port", false, ap("[2001:db8:b::1]:5000"), ap("[64:ff9b::1.2.3.4]:6081"), gatewayPacket(t, hostB, idA), DropNotGENEVE},
		{"out: not to the prefix", false, ap("[2001:db8:b::1]:6081"), ap("[2001:db8:a::1]:6081"), gatewayPacket(t, hostB, idA), DropNotGENEVE},
		{"out: speaks for another host", false, ap("[2001:db8:b::1]:6081"), ap("[64:ff9b::1.2.3.4]:6081"), gatewayPacket(t, hostB.Next(), idA), DropSpoofed},
		{"out: garbage", false, ap("[2001:db8:b::1]:6081"), ap("[64:ff9b::1.2.3.4]:6081"), []byte{1, 2, 3}, DropMalformed},
	} {
		before := stats.Drops(tc.want)
		var why DropReason
		if tc.inbound {
			_, _, why, ok = g.Inbound(tc.src, tc.dst, tc.pkt)
		} else {
			_, _, why, ok = g.Outbound(tc.src, tc.dst, tc.pkt)
		}
		if ok || why != tc.want || stats.Drops(tc.want) != before+1 {
			t.Errorf("%s: ok=%v why=%s, want %s counted", tc.name, ok, why, tc.want)
		}
	}
}

func TestGatewayCheck(t *testing.T) {
	for _, g := range []GatewayRules{
		{Prefix: WellKnownPrefix, IPv4: netip.MustParseAddr("192.0.2.1")},
		{Prefix: WellKnownPrefix, IPv4: netip.MustParseAddr("2001:db8::1"), Allowed: []netip.Prefix{netip.MustParsePrefix("::/0")}},
		{Prefix: netip.MustParsePrefix("64:ff9b::/95"), IPv4: netip.MustParseAddr("192.0.2.1"), Allowed: []netip.Prefix{netip.MustParsePrefix("::/0")}},
	} {
		if err := g.Check(); err == nil {
			t.Errorf("%+v accepted", g)
		}
	}
}

func TestGatewayAllocs(t *testing.T) {
	g := &GatewayRules{Prefix: WellKnownPrefix, IPv4: netip.MustParseAddr("203.0.113.90"),
		Allowed: []netip.Prefix{netip.MustParsePrefix("2001:db8:b::/48")}}
	pkt := gatewayPacket(t, idA, netip.MustParseAddr("2001:db8:b::1"))
	src, dst := netip.MustParseAddrPort("198.51.100.7:6081"), netip.MustParseAddrPort("203.0.113.90:6081")
	if n := testing.AllocsPerRun(1000, func() {
		if _, _, _, ok := g.Inbound(src, dst, pkt); !ok {
			panic("dropped")
		}
	}); n != 0 {
		t.Fatalf("%v allocs per packet", n)
	}
}

// TestGatewayForbiddenDestinations: an allowed host sent through the
// gateway to 64:ff9b::127.0.0.1 port 5514 and delivered a forged syslog
// line on the gateway's loopback; 127.0.0.53 and 0.0.0.0 passed too; with
// --allow ::/0 one packet addressed to the gateway itself looped at 60,000
// relays/s. None of these is relayed now, each refusal counted by reason;
// private networks pass only with AllowPrivate.
func TestGatewayForbiddenDestinations(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, allowPrivate := range []bool{false, true} {
		var refused GatewayRefusalCounts
		var stats Stats
		g := &GatewayRules{Prefix: WellKnownPrefix, IPv4: netip.MustParseAddr("203.0.113.90"),
			Allowed: []netip.Prefix{netip.MustParsePrefix("::/0")}, Stats: &stats, Refused: &refused, AllowPrivate: allowPrivate}
		hostB := netip.MustParseAddr("2001:db8:b::1")
		out := func(v4 string) (GatewayRefusal, bool) {
			dst := netip.AddrPortFrom(netip.MustParseAddr("64:ff9b::"+v4), 5514)
			var before [numGatewayRefusals]uint64
			for i := range refused {
				before[i] = refused[i].Load()
			}
			_, _, why, ok := g.Outbound(ap("[2001:db8:b::1]:6081"), dst, gatewayPacket(t, hostB, idA))
			if ok {
				return 0, true
			}
			if why != DropForbidden {
				t.Fatalf("to %s: dropped as %s, want forbidden", v4, why)
			}
			for i := range refused {
				if refused[i].Load() > before[i] {
					return GatewayRefusal(i), false
				}
			}
			t.Fatalf("to %s: refused but not counted", v4)
			return 0, false
		}
		for _, tc := range []struct {
			v4  string
			why GatewayRefusal
			ok  bool
		}{
			{"127.0.0.1", RefusedLoopback, false}, {"127.0.0.53", RefusedLoopback, false},
			{"0.0.0.0", RefusedUnspecified, false}, {"169.254.169.254", RefusedLinkLocal, false},
			{"224.0.0.1", RefusedMulticast, false}, {"255.255.255.255", RefusedBroadcast, false},
			{"240.0.0.1", RefusedReserved, false}, {"203.0.113.90", RefusedOwn, false},
			{"10.1.2.3", RefusedPrivate, allowPrivate}, {"192.168.1.1", RefusedPrivate, allowPrivate},
			{"100.64.0.1", RefusedPrivate, allowPrivate}, {"172.16.0.1", RefusedPrivate, allowPrivate},
			{"198.51.100.7", 0, true}, {"8.8.8.8", 0, true},
		} {
			why, ok := out(tc.v4)
			if ok != tc.ok || (!ok && why != tc.why) {
				t.Errorf("private %v: to %s: ok %v %s, want %v %s", allowPrivate, tc.v4, ok, why, tc.ok, tc.why)
			}
		}
		// Inbound: the option names where the packet goes on the site.
		for _, tc := range []struct {
			dst string
			why GatewayRefusal
		}{
			{"::1", RefusedLoopback}, {"::", RefusedUnspecified}, {"fe80::1", RefusedLinkLocal},
			{"ff02::1", RefusedMulticast},
			{"64:ff9b::cb00:715a", RefusedOwn}, // the NAT64 prefix: back into the gateway, a loop
		} {
			before := refused[tc.why].Load()
			pkt := gatewayPacket(t, idA, netip.MustParseAddr(tc.dst))
			if _, _, _, ok := g.Inbound(ap("192.0.2.1:6081"), ap("203.0.113.90:6081"), pkt); ok || refused[tc.why].Load() != before+1 {
				t.Errorf("inbound to %s: relayed %v, want refused as %s", tc.dst, ok, tc.why)
			}
		}
	}
}
