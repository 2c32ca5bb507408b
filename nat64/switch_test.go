package nat64

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"geneve64/nat64/udpbatch"
)

// switchHarness drives a server's receive path with frames from peers.
type switchHarness struct {
	t  *testing.T
	e  *Endpoint
	rx *rxState
}

func newSwitchHarness(t *testing.T, cfg Config) *switchHarness {
	cfg.Mode, cfg.VNI, cfg.Local = Server, 42, netip.AddrPortFrom(idA, 6081)
	cfg.Remote = netip.MustParsePrefix("fdd9:f2f4:ed01::/64")
	e := discardEndpoint(t, cfg)
	return &switchHarness{t: t, e: e, rx: &rxState{deliver: make([][]byte, 0, 8), out: newSendBatch(1024)}}
}

// from feeds one frame from peer n (identity fdd9:f2f4:ed01::n, its own
// outer port) and returns whether the local stack got it and the peers it
// was queued for.
func (h *switchHarness) from(n byte, frame []byte) (local bool, to []netip.Addr) {
	id := netip.AddrFrom16([16]byte{0xfd, 0xd9, 0xf2, 0xf4, 0xed, 0x01, 15: n})
	in := peerPacket(h.e, id, frame)
	m := udpbatch.Message{Buf: in, N: len(in), Addr: netip.AddrPortFrom(netip.MustParseAddr("64:ff9b::c000:201"), 1000+uint16(n))}
	h.rx.startBatch()
	h.rx.out.n = 0
	h.e.receive(&m, h.e.clock(), h.rx)
	local = len(h.rx.deliver) > 0
	h.rx.deliver = h.rx.deliver[:0]
	for i := 0; i < h.rx.out.n; i++ {
		if !h.rx.out.oam[i] {
			to = append(to, h.rx.out.peers[i].id)
		}
	}
	proveAll(h.e)
	return local, to
}

// proveAll answers every path challenge the endpoint has sent, as its
// peers would.
func proveAll(e *Endpoint) {
	for _, p := range e.peerList() {
		if c := p.candidate.Load(); c != nil {
			e.answered(p, c.path, c.challenge, e.clock())
		}
	}
}

// fromStack sends a frame from the server's own stack and returns the
// peers it was queued for.
func (h *switchHarness) fromStack(frame []byte) []netip.Addr {
	b := newSendBatch(1024)
	h.e.switchFrame(nil, frame, b, nil, h.e.clock())
	var to []netip.Addr
	for i := 0; i < b.n; i++ {
		to = append(to, b.peers[i].id)
	}
	return to
}

func macFrame(dst, src [6]byte) []byte {
	return append(append(append(dst[:], src[:]...), 0x08, 0x00), "payload"...)
}

func mac(b byte) [6]byte { return [6]byte{2, 0, 0, 0, 0, b} }

// TestSwitchMACFlood: one client sending 5,000 random source MACs filled
// the switch, a later client's MAC was never learned, and its download was
// flooded to every client. Now the flooder owns at most its share, and the
// frames for the later client go to it alone.
func TestSwitchMACFlood(t *testing.T) {
	h := newSwitchHarness(t, Config{})
	rng := rand.New(rand.NewPCG(1, 1))
	h.from(9, macFrame(mac(0x10), mac(0x99))) // the victim-to-be is not there yet
	for range 5000 {
		var src [6]byte
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		src[0] &^= 1 // unicast, as a real source
		h.from(1, macFrame(mac(0x10), src))
	}
	if n := h.e.sw.len(); n > DefaultMaxAddrsPerPeer+1 {
		t.Fatalf("%d addresses learned; the flooder's share is %d", n, DefaultMaxAddrsPerPeer)
	}
	h.from(2, macFrame(mac(0x10), mac(0xb2))) // a later client
	to := h.fromStack(macFrame(mac(0xb2), mac(0x10)))
	if len(to) != 1 || to[0] != h.peerID(2) {
		t.Fatalf("the server's frame for the later client went to %v, want it alone", to)
	}
}

func (h *switchHarness) peerID(n byte) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfd, 0xd9, 0xf2, 0xf4, 0xed, 0x01, 15: n})
}

// TestSwitchAging: an address not heard from for AddrAge is unknown again,
// and one heard from stays.
func TestSwitchAging(t *testing.T) {
	s := newSwitchTable(4, time.Second)
	p, q := &peer{}, &peer{}
	var a, b switchKey
	a[0], b[0] = 1, 2
	s.learn(a, p, 0)
	s.learn(b, q, 0)
	s.learn(b, q, int64(900*time.Millisecond)) // b speaks again
	if _, known := s.lookup(a, int64(1500*time.Millisecond)); known {
		t.Fatal("a silent address did not age out")
	}
	if port, known := s.lookup(b, int64(1500*time.Millisecond)); !known || port != q {
		t.Fatal("an address heard from aged out")
	}
	// A port's fifth address replaces its first.
	for i := range 5 {
		var k switchKey
		k[0], k[1] = 9, byte(i)
		s.learn(k, p, 0)
	}
	var first switchKey
	first[0] = 9
	if _, known := s.lookup(first, 0); known {
		t.Fatal("a port holds more than its share")
	}
	s.forget(p)
	if s.len() != 1 {
		t.Fatalf("%d addresses left after forgetting p, want b alone", s.len())
	}
}

// TestSwitchFloodLimit: a client's broadcasts reach the other clients at
// GroupRate a second (bursts of twice that), every one still reaches the
// server's stack, and the rest are counted.
func TestSwitchFloodLimit(t *testing.T) {
	h := newSwitchHarness(t, Config{GroupRate: 50})
	for n := byte(2); n <= 4; n++ {
		h.from(n, macFrame(mac(0x10), mac(0xb0+n)))
	}
	flooded, local := 0, 0
	bcast := [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for range 1000 {
		l, to := h.from(1, macFrame(bcast, mac(0xa1)))
		if len(to) > 0 {
			flooded++
		}
		if l {
			local++
		}
	}
	if local != 1000 || flooded < 100 || flooded > 110 || h.e.Stats().Drops(DropFloodLimit) != uint64(1000-flooded) {
		t.Fatalf("of 1,000 broadcasts: %d to the stack, %d flooded, %d counted; want 1,000, ~100 (the burst), the rest",
			local, flooded, h.e.Stats().Drops(DropFloodLimit))
	}
}

// TestIsolatePeers: with IsolatePeers, a client's frames reach the
// server's stack only, never another client; the server reaches each.
func TestIsolatePeers(t *testing.T) {
	h := newSwitchHarness(t, Config{IsolatePeers: true})
	h.fromStack(macFrame(mac(0xee), mac(0x10))) // the stack's MAC learned
	h.from(1, macFrame(mac(0x10), mac(0xa1)))
	h.from(2, macFrame(mac(0x10), mac(0xb2)))
	bcast := [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for _, f := range [][]byte{macFrame(mac(0xb2), mac(0xa1)), macFrame(bcast, mac(0xa1)), macFrame(mac(0x77), mac(0xa1))} {
		local, to := h.from(1, f)
		if len(to) != 0 {
			t.Fatalf("frame to %x from client 1 went to %v", f[:6], to)
		}
		if f[5] == 0xb2 && local {
			t.Fatal("a frame for client 2 reached the stack")
		}
	}
	if h.e.Stats().Drops(DropIsolated) != 1 {
		t.Fatalf("%d isolated drops, want 1", h.e.Stats().Drops(DropIsolated))
	}
	if local, _ := h.from(1, macFrame(mac(0x10), mac(0xa1))); !local {
		t.Fatal("client 1 cannot reach the server's stack")
	}
	if to := h.fromStack(macFrame(mac(0xb2), mac(0x10))); len(to) != 1 || to[0] != h.peerID(2) {
		t.Fatalf("the server's frame for client 2 went to %v", to)
	}
}
