package e2e

import (
	"testing"
	"time"

	"geneve64/nat64"
)

// TestSymmetricBothGateways is the original README's symmetric tunnel: both
// sites' NAT64s have the extension.
func TestSymmetricBothGateways(t *testing.T) {
	w := newWorld(true, true, 30*time.Second)
	a, ca := endpoint(t, w.a, w, nat64.Symmetric, "2001:db8:a::1", "64:ff9b::203.0.113.90", "2001:db8:b::1", nil)
	b, cb := endpoint(t, w.b, w, nat64.Symmetric, "2001:db8:b::1", "64:ff9b::198.51.100.7", "2001:db8:a::1", nil)
	exchange(t, a, ca, b, cb, "symmetric")
	if p := b.Peers()[0]; p.Path != ap("[64:ff9b::198.51.100.7]:6081") || p.LastSeen.IsZero() {
		t.Fatalf("b's peer: %+v", p)
	}
	if w.natA.GatewayDrops.Load() != 0 || w.natB.GatewayDrops.Load() != 0 {
		t.Fatalf("gateway drops: %d %d", w.natA.GatewayDrops.Load(), w.natB.GatewayDrops.Load())
	}
	// Without the extension on B's side the same tunnel cannot work: the
	// plain NAT64 has no mapping for A's packets to port 6081.
	w2 := newWorld(true, false, 30*time.Second)
	endpoint(t, w2.a, w2, nat64.Symmetric, "2001:db8:a::1", "64:ff9b::203.0.113.90", "2001:db8:b::1", nil)
	b2, _ := endpoint(t, w2.b, w2, nat64.Symmetric, "2001:db8:b::1", "64:ff9b::198.51.100.7", "2001:db8:a::1", nil)
	eventually(t, "natB filtering A's packets", func() bool { return w2.natB.Filtered.Load() > 0 })
	if !b2.Peers()[0].LastSeen.IsZero() {
		t.Fatal("b heard a through a plain NAT64")
	}
}

// TestClientBehindNAT444 is the original README's client/server tunnel: the
// client behind a plain NAT64 behind a carrier NAT44, the server behind the
// extension gateway; the client's PATH is a hostname.
func TestClientBehindNAT444(t *testing.T) {
	w := newWorld(false, true, 30*time.Second)
	srv, cs := endpoint(t, w.b, w, nat64.Server, "2001:db8:b::1", "", "fdd9:f2f4:ed01::/64", nil)
	cli, cc := endpoint(t, w.c, w, nat64.Client, "fdd9:f2f4:ed01::1", "geneve-entry-point.example", "2001:db8:b::1", nil)
	if got := cli.Peers()[0].Path; got != ap("[64:ff9b::203.0.113.90]:6081") {
		t.Fatalf("client path %s", got)
	}
	exchange(t, cli, cc, srv, cs, "client/server")
	p := srv.Peers()[0]
	// The server sees the client at the carrier NAT's address, synthesized
	// under its own prefix, and some port the two NATs chose.
	if p.Identity != ip("fdd9:f2f4:ed01::1") || p.Path.Addr() != ip("64:ff9b::192.0.2.1") {
		t.Fatalf("server's peer %+v", p)
	}
}

// TestAuto: auto mode works whichever side's NAT64 has the extension.
func TestAuto(t *testing.T) {
	t.Run("both gateways", func(t *testing.T) {
		w := newWorld(true, true, 30*time.Second)
		a, ca := endpoint(t, w.a, w, nat64.Auto, "2001:db8:a::1", "64:ff9b::203.0.113.90", "2001:db8:b::1", nil)
		b, cb := endpoint(t, w.b, w, nat64.Auto, "2001:db8:b::1", "64:ff9b::198.51.100.7", "2001:db8:a::1", nil)
		exchange(t, a, ca, b, cb, "auto")
	})
	t.Run("one gateway, peer behind NAT444", func(t *testing.T) {
		w := newWorld(false, true, 30*time.Second)
		// B cannot know C's path in advance: it guesses the carrier's public
		// address and learns the real one from C's first packet.
		b, cb := endpoint(t, w.b, w, nat64.Auto, "2001:db8:b::1", "64:ff9b::192.0.2.1", "fdd9:f2f4:ed01::1", nil)
		c, cc := endpoint(t, w.c, w, nat64.Auto, "fdd9:f2f4:ed01::1", "geneve-entry-point.example", "2001:db8:b::1",
			func(cfg *nat64.Config) { cfg.Bind = ap("[::]:0") })
		exchange(t, c, cc, b, cb, "auto one-sided")
		if p := b.Peers()[0].Path; p.Addr() != ip("64:ff9b::192.0.2.1") || p.Port() == 6081 {
			t.Fatalf("b did not learn c's mapped port: %s", p)
		}
	})
}

// TestServerManyClients: one server, three clients behind the same plain
// NAT64 and NAT44, all on one inner segment.
func TestServerManyClients(t *testing.T) {
	w := newWorld(false, true, 30*time.Second)
	srv, cs := endpoint(t, w.b, w, nat64.Server, "2001:db8:b::1", "", "fdd9:f2f4:ed01::/64", nil)
	var cls []*nat64.Endpoint
	var cols []*collector
	for i, id := range []string{"fdd9:f2f4:ed01::1", "fdd9:f2f4:ed01::2", "fdd9:f2f4:ed01::3"} {
		c, col := endpoint(t, w.c, w, nat64.Client, id, "203.0.113.90", "2001:db8:b::1", nil)
		cls, cols = append(cls, c), append(cols, col)
		exchange(t, c, col, srv, cs, "client "+string(rune('1'+i)))
	}
	if n := len(srv.Peers()); n != 3 {
		t.Fatalf("%d peers", n)
	}
	// Client 1 to client 3 by MAC, switched by the server.
	cls[2].SendFrames([][]byte{frame(0xff, 3, "3 announces itself")})
	f := frame(3, 1, "1 to 3")
	eventually(t, "1 to 3", func() bool {
		cls[0].SendFrames([][]byte{f})
		time.Sleep(10 * time.Millisecond)
		return cols[2].has(f)
	})
	if cols[1].has(f) {
		t.Fatal("client 2 got a frame for client 3")
	}
}

// TestServerFollowsRebinding: the client's NAT forgets its mapping; the
// client's next packet comes from a new port and the server follows it.
func TestServerFollowsRebinding(t *testing.T) {
	w := newWorld(false, true, 30*time.Second)
	srv, cs := endpoint(t, w.b, w, nat64.Server, "2001:db8:b::1", "", "fdd9:f2f4:ed01::/64", nil)
	cli, cc := endpoint(t, w.c, w, nat64.Client, "fdd9:f2f4:ed01::1", "203.0.113.90", "2001:db8:b::1", nil)
	exchange(t, cli, cc, srv, cs, "before")
	before := srv.Peers()[0].Path
	changes := srv.Stats().PathChanges.Load()
	w.cgn.Rebind()
	exchange(t, cli, cc, srv, cs, "after")
	after := srv.Peers()[0].Path
	if after == before || srv.Stats().PathChanges.Load() <= changes {
		t.Fatalf("path %s → %s, %d changes", before, after, srv.Stats().PathChanges.Load())
	}
}

// TestKeepaliveHoldsMapping: with keepalives, the NAT mapping outlives its
// timeout and the server reaches an idle client; without, it does not.
func TestKeepaliveHoldsMapping(t *testing.T) {
	for _, keepalive := range []time.Duration{60 * time.Millisecond, -1} {
		w := newWorld(false, true, 300*time.Millisecond)
		ka := func(c *nat64.Config) { c.Keepalive = keepalive }
		srv, cs := endpoint(t, w.b, w, nat64.Server, "2001:db8:b::1", "", "fdd9:f2f4:ed01::/64", ka)
		cli, cc := endpoint(t, w.c, w, nat64.Client, "fdd9:f2f4:ed01::1", "203.0.113.90", "2001:db8:b::1", ka)
		exchange(t, cli, cc, srv, cs, "warm up")
		time.Sleep(1 * time.Second) // three mapping lifetimes, nobody sends data
		f := frame(1, 2, "server speaks first after idling")
		srv.SendFrames([][]byte{f})
		time.Sleep(100 * time.Millisecond)
		if got := cc.has(f); got != (keepalive > 0) {
			t.Fatalf("keepalive %v: frame arrived = %v (filtered %d)", keepalive, got, w.cgn.Filtered.Load())
		}
	}
}

// TestSilentPeerDetected: a server that goes away is noticed.
func TestSilentPeerDetected(t *testing.T) {
	w := newWorld(false, true, 30*time.Second)
	srv, cs := endpoint(t, w.b, w, nat64.Server, "2001:db8:b::1", "", "fdd9:f2f4:ed01::/64", nil)
	cli, cc := endpoint(t, w.c, w, nat64.Client, "fdd9:f2f4:ed01::1", "203.0.113.90", "2001:db8:b::1",
		func(c *nat64.Config) { c.Keepalive = 30 * time.Millisecond })
	exchange(t, cli, cc, srv, cs, "alive")
	eventually(t, "an RTT", func() bool { return cli.Peers()[0].RTT > 0 })
	srv.Close()
	eventually(t, "silence", func() bool { return cli.Peers()[0].Silent })
}

// TestFaults: loss, duplication, reordering and delay on the internet do
// not break the tunnel; frames that survive are delivered once per copy,
// and nothing bad is counted.
func TestFaults(t *testing.T) {
	w := newWorld(true, true, 30*time.Second)
	w.internet.SetFaults(netsimFaults())
	a, ca := endpoint(t, w.a, w, nat64.Symmetric, "2001:db8:a::1", "64:ff9b::203.0.113.90", "2001:db8:b::1", nil)
	b, cb := endpoint(t, w.b, w, nat64.Symmetric, "2001:db8:b::1", "64:ff9b::198.51.100.7", "2001:db8:a::1", nil)
	const n = 500
	for i := 0; i < n; i++ {
		a.SendFrames([][]byte{frame(2, 1, string(rune(i)))})
	}
	time.Sleep(300 * time.Millisecond)
	got := cb.count()
	// 10% loss, 10% duplication: between 400 and 600 is plausible; a
	// tunnel that lost everything or multiplied frames is not.
	if got < 350 || got > 650 {
		t.Fatalf("%d of %d frames arrived", got, n)
	}
	if d := b.Stats().TotalDrops(); d != 0 {
		t.Fatalf("%d drops at b", d)
	}
	exchange(t, a, ca, b, cb, "after faults")
}

// TestAuthenticatedThroughGateway: with a key on both ends, the tunnel
// works across a plain NAT64 behind NAT444 and the extension gateway, which
// has no key; a client with another key gets nowhere.
func TestAuthenticatedThroughGateway(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	withKey := func(k []byte) func(*nat64.Config) { return func(c *nat64.Config) { c.Key = k } }
	w := newWorld(false, true, 30*time.Second)
	srv, cs := endpoint(t, w.b, w, nat64.Server, "2001:db8:b::1", "", "fdd9:f2f4:ed01::/64", withKey(key))
	cli, cc := endpoint(t, w.c, w, nat64.Client, "fdd9:f2f4:ed01::1", "geneve-entry-point.example", "2001:db8:b::1", withKey(key))
	exchange(t, cli, cc, srv, cs, "authenticated")
	if w.natB.GatewayDrops.Load() != 0 {
		t.Fatalf("the gateway dropped %d authenticated packets", w.natB.GatewayDrops.Load())
	}
	other, _ := endpoint(t, w.c, w, nat64.Client, "fdd9:f2f4:ed01::2", "geneve-entry-point.example", "2001:db8:b::1",
		withKey([]byte("another key, thirty-two bytes!!!")))
	other.SendFrames([][]byte{frame(2, 9, "forged")})
	eventually(t, "the other key refused", func() bool { return srv.Stats().Drops(nat64.DropAuth) > 0 })
	if n := len(srv.Peers()); n != 1 {
		t.Fatalf("%d peers: a packet with another key made one", n)
	}
}

// TestAuthenticatedSymmetricAndAuto: authenticated mode in the other two
// modes, across two gateways and across one.
func TestAuthenticatedSymmetricAndAuto(t *testing.T) {
	key := func(c *nat64.Config) { c.Key = []byte("symmetric and auto, 32-byte key.") }
	w := newWorld(true, true, 30*time.Second)
	a, ca := endpoint(t, w.a, w, nat64.Symmetric, "2001:db8:a::1", "64:ff9b::203.0.113.90", "2001:db8:b::1", key)
	b, cb := endpoint(t, w.b, w, nat64.Symmetric, "2001:db8:b::1", "64:ff9b::198.51.100.7", "2001:db8:a::1", key)
	exchange(t, a, ca, b, cb, "symmetric with a key")

	w2 := newWorld(false, true, 30*time.Second)
	b2, cb2 := endpoint(t, w2.b, w2, nat64.Auto, "2001:db8:b::1", "64:ff9b::192.0.2.1", "fdd9:f2f4:ed01::1", key)
	c2, cc2 := endpoint(t, w2.c, w2, nat64.Auto, "fdd9:f2f4:ed01::1", "geneve-entry-point.example", "2001:db8:b::1",
		func(c *nat64.Config) { key(c); c.Bind = ap("[::]:0") })
	exchange(t, c2, cc2, b2, cb2, "auto with a key")
	for _, e := range []*nat64.Endpoint{a, b, b2, c2} {
		if d := e.Stats().Drops(nat64.DropAuth) + e.Stats().Drops(nat64.DropReplay); d != 0 {
			t.Fatalf("%d authentication drops between holders of the key", d)
		}
	}
}
