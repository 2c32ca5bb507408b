package stack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseEgressRule(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"192.0.2.7/32:443", "192.0.2.7/32:443"},
		{"2001:db8::/32:8000-8099", "2001:db8::/32:8000-8099"},
		{"127.0.0.1", "127.0.0.1/32"},
		{"::1", "::1/128"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
	} {
		r, err := ParseEgressRule(tc.in)
		if err != nil || r.String() != tc.want {
			t.Errorf("%q: %v %v, want %s", tc.in, r, err, tc.want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "10.0.0.0/8:", "10.0.0.0/8:0", "10.0.0.0/8:70000", "10.0.0.0/8:9-8", "host:80", "1.2.3.4:80", "10.0.0.0/8:a-b"} {
		if _, err := ParseEgressRule(bad); !errors.Is(err, ErrEgressRule) || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v, want ErrEgressRule naming it", bad, err)
		}
	}
}

// TestEgressPolicy: the default refuses the host's loopback, link-local
// (cloud metadata), multicast, broadcast and unspecified addresses and
// nothing else; deny wins; an allow rule inside a refused range opens just
// that; allow rules elsewhere narrow.
func TestEgressPolicy(t *testing.T) {
	rules := func(ss ...string) []EgressRule {
		var out []EgressRule
		for _, s := range ss {
			r, err := ParseEgressRule(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	type want struct {
		dst string
		ok  bool
		why EgressRefusal
	}
	for _, tc := range []struct {
		name        string
		allow, deny []EgressRule
		cases       []want
	}{
		{"default", nil, nil, []want{
			{"192.0.2.1:80", true, 0}, {"10.1.2.3:22", true, 0}, {"[2001:db8::1]:443", true, 0},
			{"127.0.0.1:9164", false, RefusedLoopback}, {"127.9.9.9:1", false, RefusedLoopback}, {"[::1]:80", false, RefusedLoopback},
			{"[::ffff:127.0.0.1]:80", false, RefusedLoopback},
			{"169.254.169.254:80", false, RefusedLinkLocal}, {"[fe80::1]:80", false, RefusedLinkLocal},
			{"224.0.0.251:5353", false, RefusedMulticast}, {"[ff02::1]:5353", false, RefusedMulticast},
			{"255.255.255.255:67", false, RefusedBroadcast},
			{"0.0.0.0:80", false, RefusedUnspecified}, {"[::]:80", false, RefusedUnspecified},
		}},
		{"deny wins", rules("192.0.2.0/24", "127.0.0.1/32:8080"), rules("192.0.2.7/32:443", "127.0.0.0/8:8080"), []want{
			{"192.0.2.7:443", false, RefusedDenied}, {"192.0.2.7:444", true, 0},
			{"127.0.0.1:8080", false, RefusedDenied},
		}},
		{"allow opens a refused range, only where it says", rules("127.0.0.1/32:8080"), nil, []want{
			{"127.0.0.1:8080", true, 0}, {"127.0.0.1:8081", false, RefusedLoopback}, {"192.0.2.1:80", true, 0},
		}},
		{"allow 0.0.0.0/0 does not open loopback", rules("0.0.0.0/0"), nil, []want{
			{"192.0.2.1:80", true, 0}, {"127.0.0.1:80", false, RefusedLoopback}, {"[2001:db8::1]:80", false, RefusedNotAllowed},
		}},
		{"allow narrows", rules("10.0.0.0/8:443"), nil, []want{
			{"10.0.0.1:443", true, 0}, {"10.0.0.1:80", false, RefusedNotAllowed}, {"192.0.2.1:443", false, RefusedNotAllowed},
		}},
	} {
		p := newEgressPolicy(tc.allow, tc.deny)
		for _, c := range tc.cases {
			why, ok := p.check(netip.MustParseAddrPort(c.dst))
			if ok != c.ok || (!ok && why != c.why) {
				t.Errorf("%s: %s: ok %v %s, want %v %s", tc.name, c.dst, ok, why, c.ok, c.why)
			}
		}
	}
}

// TestEgressRefusesAtOnce: through two stacks, a refused TCP flow is reset
// at once (no dial, no waiting for a timeout) and a refused UDP flow gets
// ICMP port unreachable; both are counted by reason, and an allowed flow
// still goes.
func TestEgressRefusesAtOnce(t *testing.T) {
	var dials atomic.Int32
	echo := hostEcho(t, "tcp4", "127.0.0.1:0")
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		dials.Add(1)
		if address == "192.0.2.80:80" {
			address = echo.Addr().String() // an ordinary address, played by loopback
		}
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
	a, b := pair(t, Ethernet,
		Config{Addrs: addrA, Routes: []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.42.0.1")}}},
		Config{Addrs: addrB, Egress: true, EgressDial: dial})
	for _, tc := range []struct {
		addr string
		why  EgressRefusal
	}{
		{"10.42.0.1:22", RefusedLoopback}, // the far end's own address: no --egress-loopback
		{"169.254.169.254:80", RefusedLinkLocal},
	} {
		start := time.Now()
		_, err := a.DialContext(ctx(t), "tcp", tc.addr)
		if err == nil || !strings.Contains(err.Error(), "refused") || time.Since(start) > 5*time.Second {
			t.Fatalf("dial %s: %v after %v, want refused at once", tc.addr, err, time.Since(start))
		}
		if n := b.EgressRefused(tc.why); n == 0 {
			t.Fatalf("dial %s: not counted as %s", tc.addr, tc.why)
		}
	}
	uc, err := a.DialContext(ctx(t), "udp", "169.254.169.254:53")
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	// The far end answers with ICMP port unreachable, as a host with
	// nothing on the port would; the near end receives it.
	uc.Write([]byte("query"))
	sent := b.s.Stats().ICMP.V4.PacketsSent.DstUnreachable
	got := a.s.Stats().ICMP.V4.PacketsReceived.DstUnreachable
	deadline := time.Now().Add(5 * time.Second)
	for got.Value() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if sent.Value() == 0 || got.Value() == 0 {
		t.Fatalf("UDP to a refused address: %d ICMP destination unreachable sent, %d received", sent.Value(), got.Value())
	}
	if b.EgressRefused(RefusedLinkLocal) < 2 {
		t.Fatal("the refused UDP flow was not counted")
	}
	if dials.Load() != 0 {
		t.Fatalf("%d host dials for refused flows", dials.Load())
	}
	// An ordinary address goes.
	c, err := a.DialContext(ctx(t), "tcp", "192.0.2.80:80")
	if err != nil {
		t.Fatalf("allowed flow: %v", err)
	}
	c.Close()
}
