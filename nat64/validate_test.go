package nat64

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"geneve64/geneve"
	"geneve64/nat64/udpbatch"
)

// answerer plays a peer's outer socket that answers path challenges, as
// every geneve64 endpoint does, for tests that send hand-made packets.
func answerer(t *testing.T, c udpbatch.PacketConn, self, server netip.Addr) {
	var wg sync.WaitGroup
	wg.Add(1)
	t.Cleanup(func() { c.Close(); wg.Wait() })
	go func() {
		defer wg.Done()
		msgs := []udpbatch.Message{{Buf: make([]byte, 2048)}}
		for {
			if _, err := c.ReadBatch(msgs); err != nil {
				return
			}
			h, payload, err := geneve.Parse(msgs[0].Buf[:msgs[0].N])
			if err != nil || !h.OAM {
				continue
			}
			m, err := parseOAM(payload)
			if err != nil || m.kind != oamEchoRequest {
				continue
			}
			c.WriteBatch([]udpbatch.Message{{Buf: oamPacket(t, h.VNI, self, server, oamMessage{kind: oamEchoReply, seq: m.seq, stamp: m.stamp}), Addr: msgs[0].Addr}})
		}
	}()
}

// oamPacket builds an OAM packet from identity src to dst.
func oamPacket(t testing.TB, vni uint32, src, dst netip.Addr, m oamMessage) []byte {
	opt, err := AppendOption(nil, Endpoints{Src: src, Dst: dst})
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := (&geneve.Header{OAM: true, Protocol: ProtocolOAM, VNI: vni, OptionBytes: opt}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return appendOAM(pkt, m)
}

// TestPathValidation: a server learns a path only once it answered a
// challenge. A packet with a forged source (an address that never
// answers) creates a peer that is sent nothing but one challenge per
// interval and expires; a moved client keeps its old path until the new
// one answers.
func TestPathValidation(t *testing.T) {
	cs, ls := loopback(t)
	clk := newTestClock()
	srv, ss := startClocked(t, Config{Mode: Server, VNI: 7, Local: netip.AddrPortFrom(idServer, 0),
		Remote: netip.MustParsePrefix("fdd9:f2f4:ed01::/64"), Listen: ls, Keepalive: time.Hour}, clk)
	frame := ethFrame(0x10, 1, "hello")
	opt, _ := AppendOption(nil, Endpoints{Src: idClient, Dst: idServer})
	pkt, _ := (&geneve.Header{Protocol: geneve.ProtocolEthernet, VNI: 7, OptionBytes: opt}).Append(nil)
	pkt = append(pkt, frame...)

	// A victim's address: it receives, and never answers.
	victim, _ := loopback(t)
	for range 20 {
		victim.WriteBatch([]udpbatch.Message{{Buf: pkt, Addr: cs.LocalAddr()}}) // as if forged by someone else
	}
	ss.waitFor(t, frame) // the frame itself is delivered: it passed every check
	waitUntil(t, "a challenge", func() bool { return srv.Stats().Challenges.Load() >= 1 })
	if p := srv.Peers(); len(p) != 1 || p[0].Path.IsValid() {
		t.Fatalf("peers %+v: want one with no path yet", p)
	}
	srv.SendFrames([][]byte{ethFrame(0xff, 0x20, "broadcast")})
	got := 0
	msgs := []udpbatch.Message{{Buf: make([]byte, 2048)}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := victim.ReadBatch(msgs); err != nil {
				return
			}
			h, _, err := geneve.Parse(msgs[0].Buf[:msgs[0].N])
			if err == nil && !h.OAM {
				got++
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	victim.Close()
	<-done
	if got != 0 || srv.Stats().Challenges.Load() > 2 {
		t.Fatalf("the unproven address got %d frames and %d challenges", got, srv.Stats().Challenges.Load())
	}
	// It expires once the timeout passes without an answer.
	srv.maintain(srv.clock() + int64(unvalidatedTimeout) + 1)
	if n := len(srv.Peers()); n != 0 {
		t.Fatalf("%d peers after the unvalidated timeout", n)
	}

	// A real client at a: its path is proven at once.
	a, _ := loopback(t)
	answerer(t, a, idClient, idServer)
	a.WriteBatch([]udpbatch.Message{{Buf: pkt, Addr: cs.LocalAddr()}})
	waitUntil(t, "a proven", func() bool { p := srv.Peers(); return len(p) == 1 && p[0].Path == a.LocalAddr() })
	// A packet from b that does not answer moves nothing.
	b, _ := loopback(t)
	clk.advance(challengeInterval)
	b.WriteBatch([]udpbatch.Message{{Buf: pkt, Addr: cs.LocalAddr()}})
	waitUntil(t, "b challenged", func() bool { return srv.Stats().Challenges.Load() >= 3 })
	time.Sleep(100 * time.Millisecond)
	if p := srv.Peers()[0].Path; p != a.LocalAddr() {
		t.Fatalf("the path moved to %s, which never answered", p)
	}
}

// TestUnprovenPeersMakeRoom: a full peer table takes a newcomer in place
// of a peer that never proved its path, and never in place of one that
// did; the log says the table is full once.
func TestUnprovenPeersMakeRoom(t *testing.T) {
	cs, ls := loopback(t)
	srv, _ := start(t, Config{Mode: Server, VNI: 7, Local: netip.AddrPortFrom(idServer, 0),
		Remote: netip.MustParsePrefix("fdd9:f2f4:ed01::/64"), Listen: ls, Keepalive: time.Hour, MaxPeers: 2})
	join := func(id netip.Addr, answer bool) udpbatch.PacketConn {
		c, _ := loopback(t)
		if answer {
			answerer(t, c, id, idServer)
		}
		opt, _ := AppendOption(nil, Endpoints{Src: id, Dst: idServer})
		pkt, _ := (&geneve.Header{Protocol: geneve.ProtocolEthernet, VNI: 7, OptionBytes: opt}).Append(nil)
		c.WriteBatch([]udpbatch.Message{{Buf: append(pkt, ethFrame(0x10, 1, "x")...), Addr: cs.LocalAddr()}})
		return c
	}
	id := func(n byte) netip.Addr { return netip.AddrFrom16([16]byte{0xfd, 0xd9, 0xf2, 0xf4, 0xed, 0x01, 15: n}) }
	proven := func() int {
		n := 0
		for _, p := range srv.Peers() {
			if p.Path.IsValid() {
				n++
			}
		}
		return n
	}
	join(id(1), false)
	join(id(2), false)
	waitUntil(t, "two unproven peers", func() bool { return len(srv.Peers()) == 2 })
	join(id(3), true)
	waitUntil(t, "the real client in an unproven one's place", func() bool { return proven() == 1 })
	join(id(4), true)
	waitUntil(t, "a second real client", func() bool { return proven() == 2 })
	before := srv.Stats().Drops(DropPeerLimit)
	join(id(5), false)
	waitUntil(t, "the newcomer refused", func() bool { return srv.Stats().Drops(DropPeerLimit) > before })
	if proven() != 2 || srv.Stats().Evicted.Load() != 2 {
		t.Fatalf("%d proven peers, %d evicted; want 2 and 2", proven(), srv.Stats().Evicted.Load())
	}
}
