package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"geneve64/internal/netsim"
	"geneve64/nat64"
)

var (
	ap = netip.MustParseAddrPort
	ip = netip.MustParseAddr
	pf = netip.MustParsePrefix
)

// world is the original README's world: site A and site B behind NAT64s,
// and a client site C whose plain NAT64 sits behind a carrier's NAT44.
type world struct {
	internet, siteA, siteB, siteC, carrier *netsim.Segment
	natA, natB, natC, cgn                  *netsim.NAT
	a, b, c                                *netsim.Host
	dns                                    *netsim.Resolver
}

// newWorld builds the topology. Site A's and B's NAT64s have the extension
// gateway when gwA / gwB; site C's never does.
func newWorld(gwA, gwB bool, timeout time.Duration) *world {
	w := &world{
		internet: netsim.NewSegment("internet"),
		siteA:    netsim.NewSegment("siteA"),
		siteB:    netsim.NewSegment("siteB"),
		siteC:    netsim.NewSegment("siteC"),
		carrier:  netsim.NewSegment("carrier"),
		dns:      netsim.NewResolver(),
	}
	gw := func(on bool, allowed string) *nat64.GatewayRules {
		if !on {
			return nil
		}
		return &nat64.GatewayRules{Allowed: []netip.Prefix{pf(allowed)}}
	}
	w.natA = netsim.NewNAT("natA", w.siteA, w.internet, netsim.NATConfig{Public: ip("198.51.100.7"),
		Prefix: nat64.WellKnownPrefix, Timeout: timeout, Gateway: gw(gwA, "2001:db8:a::/48")})
	w.natB = netsim.NewNAT("natB", w.siteB, w.internet, netsim.NATConfig{Public: ip("203.0.113.90"),
		Prefix: nat64.WellKnownPrefix, Timeout: timeout, Gateway: gw(gwB, "2001:db8:b::/48")})
	w.cgn = netsim.NewNAT("cgn", w.carrier, w.internet, netsim.NATConfig{Public: ip("192.0.2.1"), Timeout: timeout})
	w.natC = netsim.NewNAT("natC", w.siteC, w.carrier, netsim.NATConfig{Public: ip("100.64.0.2"),
		Prefix: nat64.WellKnownPrefix, Timeout: timeout})
	w.a = netsim.NewHost("a", w.siteA, ip("2001:db8:a::1"))
	w.b = netsim.NewHost("b", w.siteB, ip("2001:db8:b::1"))
	w.c = netsim.NewHost("c", w.siteC, ip("2001:db8:c::1"))
	w.dns.Set("geneve-entry-point.example", ip("203.0.113.90"))
	return w
}

func logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// collector is an InnerLink keeping copies of the frames it gets.
type collector struct {
	mu     sync.Mutex
	frames [][]byte
}

func (c *collector) DeliverFrames(fs [][]byte) {
	c.mu.Lock()
	for _, f := range fs {
		c.frames = append(c.frames, bytes.Clone(f))
	}
	c.mu.Unlock()
}

func (c *collector) has(f []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.frames {
		if bytes.Equal(x, f) {
			return true
		}
	}
	return false
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames)
}

// endpoint starts an endpoint on host h from the positional arguments.
func endpoint(t *testing.T, h *netsim.Host, w *world, mode nat64.Mode, local, path, remote string, tweak func(*nat64.Config)) (*nat64.Endpoint, *collector) {
	t.Helper()
	l, r := localOf(t, local), remoteOf(t, remote)
	cfg := nat64.Config{Mode: mode, VNI: 42, Local: l, Remote: r, Listen: h.Listen, HasIPv4: h.HasIPv4,
		Resolver: w.dns, NAT64Prefix: nat64.WellKnownPrefix, Logger: logger(t), Keepalive: 100 * time.Millisecond}
	if mode == nat64.Client {
		// The client's LOCAL is an identity, not an address of its host.
		cfg.Bind = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
	}
	if path != "" {
		cfg.Path = targetOf(path)
	}
	if tweak != nil {
		tweak(&cfg)
	}
	e, err := nat64.NewEndpoint(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	e.Start(c)
	t.Cleanup(func() { e.Close() })
	return e, c
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func frame(dst, src byte, body string) []byte {
	f := []byte{0x02, 0, 0, 0, 0, dst, 0x02, 0, 0, 0, 0, src, 0x08, 0x00}
	if dst == 0xff {
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	return append(f, body...)
}

// exchange sends a frame each way and waits for both to arrive.
func exchange(t *testing.T, x *nat64.Endpoint, cx *collector, y *nat64.Endpoint, cy *collector, tag string) {
	t.Helper()
	fx, fy := frame(2, 1, tag+" x→y"), frame(1, 2, tag+" y→x")
	eventually(t, tag+" both ways", func() bool {
		// Resend until it arrives: the first packets may race the path.
		if !cy.has(fx) {
			x.SendFrames([][]byte{fx})
		}
		if !cx.has(fy) {
			y.SendFrames([][]byte{fy})
		}
		time.Sleep(10 * time.Millisecond)
		return cy.has(fx) && cx.has(fy)
	})
}
