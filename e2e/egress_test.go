package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"geneve64/internal/node"
	"geneve64/nat64"
	"geneve64/socks"
	"geneve64/stack"
)

// egressClient starts a client node of the server far with its own
// identity and inner address.
func egressClient(t *testing.T, far *node.Node, id, inner string) *node.Node {
	path := far.Endpoint.LocalAddr()
	return startNode(t, node.Config{
		Endpoint: nat64.Config{Mode: nat64.Client, VNI: 42, Local: ap("[" + id + "]:0"),
			Path: nat64.Target{Addr: path.Addr(), Port: path.Port()}, Remote: pf("2001:db8:b::1/128")},
		Stack: stack.Config{Addrs: []netip.Prefix{pf(inner)},
			Routes: []stack.Route{{Dst: pf("0.0.0.0/0"), Via: ip("10.42.0.1")}}},
		SOCKS: &socks.Config{Addr: "127.0.0.1:0"},
	})
}

// TestEgressHandshakeShare: one client sending SYNs to addresses whose
// dial never finishes used to fill every handshake slot of the server's
// egress (300 SYN/s filled 512 slots and blocked everyone for 25 s). Now
// each inner address holds at most its share, and another client's
// connection goes through at once while the flood goes on.
func TestEgressHandshakeShare(t *testing.T) {
	far := startFarHost(t)
	srv := startNode(t, node.Config{
		Endpoint: nat64.Config{Mode: nat64.Server, VNI: 42, Local: ap("[2001:db8:b::1]:0"), Bind: ap("[::1]:0"),
			Remote: pf("fdd9:f2f4:ed01::/64")},
		Stack: stack.Config{Addrs: farAddrs, Egress: true, EgressLoopback: true, EgressDial: hangingDial, MaxInFlightTCP: 64},
	})
	attacker := egressClient(t, srv, "fdd9:f2f4:ed01::66", "10.42.0.66/24")
	victim := egressClient(t, srv, "fdd9:f2f4:ed01::2", "10.42.0.2/24")
	eventually(t, "both clients up", func() bool { return attacker.Healthy(time.Minute) && victim.Healthy(time.Minute) })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range 200 { // far more than the 64 slots
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c, err := attacker.Stack.DialContext(ctx, "tcp", hangingTarget); err == nil {
				c.Close()
			}
		}()
	}
	eventually(t, "the flood at its share", func() bool { return srv.Stack.EgressRefused(stack.RefusedLimit) > 0 })
	for i := range 5 {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := victim.Stack.DialContext(dctx, "tcp", fmt.Sprintf("10.42.0.1:%d", far.port))
		dcancel()
		if err != nil {
			t.Fatalf("victim's connection %d during the flood: %v", i, err)
		}
		c.Close()
	}
}

// TestEgressRefusals: through a client's SOCKS, the server host's own
// loopback services (without --egress-loopback), link-local addresses
// (cloud metadata) and a denied range are refused at once, each counted
// by reason, while an ordinary flow still goes.
func TestEgressRefusals(t *testing.T) {
	far := startFarHost(t)
	srv := startNode(t, node.Config{
		Endpoint: nat64.Config{Mode: nat64.Server, VNI: 42, Local: ap("[2001:db8:b::1]:0"), Bind: ap("[::1]:0"),
			Remote: pf("fdd9:f2f4:ed01::/64")},
		Stack: stack.Config{Addrs: farAddrs, Egress: true, EgressDial: hangingDial,
			EgressDeny: []stack.EgressRule{{Prefix: pf("198.51.100.0/24")}}},
	})
	cli := egressClient(t, srv, "fdd9:f2f4:ed01::2", "10.42.0.2/24")
	eventually(t, "the client up", func() bool { return cli.Healthy(time.Minute) })
	d := (&pair{near: cli}).socksDialer(t)
	for _, tc := range []struct {
		target string
		why    stack.EgressRefusal
	}{
		{fmt.Sprintf("10.42.0.1:%d", far.port), stack.RefusedLoopback},
		{"169.254.169.254:80", stack.RefusedLinkLocal},
		{"198.51.100.7:443", stack.RefusedDenied},
	} {
		start := time.Now()
		c, err := d.DialContext(context.Background(), "tcp", tc.target)
		if err == nil {
			c.Close()
			t.Fatalf("%s reached", tc.target)
		}
		if !strings.Contains(err.Error(), "refused") || time.Since(start) > 5*time.Second {
			t.Fatalf("%s: %v after %v, want refused at once", tc.target, err, time.Since(start))
		}
		if srv.Stack.EgressRefused(tc.why) == 0 {
			t.Fatalf("%s: not counted as %s", tc.target, tc.why)
		}
	}
}

// TestIsolatePeers: two clients of one server reach each other on the
// shared segment, unless the server runs with IsolatePeers
// (--isolate-peers): then each reaches the server and never the other.
func TestIsolatePeers(t *testing.T) {
	for _, isolate := range []bool{false, true} {
		t.Run(fmt.Sprintf("isolate=%v", isolate), func(t *testing.T) {
			srv := startNode(t, node.Config{
				Endpoint: nat64.Config{Mode: nat64.Server, VNI: 42, Local: ap("[2001:db8:b::1]:0"), Bind: ap("[::1]:0"),
					Remote: pf("fdd9:f2f4:ed01::/64"), IsolatePeers: isolate},
				Stack: stack.Config{Addrs: farAddrs},
			})
			a := egressClient(t, srv, "fdd9:f2f4:ed01::2", "10.42.0.2/24")
			b := egressClient(t, srv, "fdd9:f2f4:ed01::3", "10.42.0.3/24")
			eventually(t, "both clients up", func() bool { return a.Healthy(time.Minute) && b.Healthy(time.Minute) })
			for _, c := range []*node.Node{a, b} {
				if _, err := c.Stack.Ping(withTimeout(t, 5*time.Second), ip("10.42.0.1")); err != nil {
					t.Fatalf("a client cannot reach the server: %v", err)
				}
			}
			_, err := a.Stack.Ping(withTimeout(t, 2*time.Second), ip("10.42.0.3"))
			if isolate && err == nil {
				t.Fatal("client a reached client b through an isolating server")
			}
			if !isolate && err != nil {
				t.Fatalf("client a cannot reach client b: %v", err)
			}
		})
	}
}
