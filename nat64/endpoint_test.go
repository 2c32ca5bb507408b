package nat64

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"geneve64/geneve"
	"geneve64/nat64/udpbatch"
)

// sink is an InnerLink that keeps copies of what it is given.
type sink struct {
	mu     sync.Mutex
	frames [][]byte
	signal chan struct{}
}

func newSink() *sink { return &sink{signal: make(chan struct{}, 1)} }

func (s *sink) DeliverFrames(frames [][]byte) {
	s.mu.Lock()
	for _, f := range frames {
		s.frames = append(s.frames, bytes.Clone(f))
	}
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// waitFor waits until the sink holds a frame equal to want.
func (s *sink) waitFor(t *testing.T, want []byte) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		for _, f := range s.frames {
			if bytes.Equal(f, want) {
				s.mu.Unlock()
				return
			}
		}
		s.mu.Unlock()
		select {
		case <-s.signal:
		case <-deadline:
			t.Fatalf("frame %x never arrived", want[:min(len(want), 20)])
		}
	}
}

func (s *sink) has(want []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.frames {
		if bytes.Equal(f, want) {
			return true
		}
	}
	return false
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// loopback opens a real UDP socket on [::1] for an endpoint to use.
func loopback(t *testing.T) (udpbatch.PacketConn, ListenFunc) {
	t.Helper()
	c, err := udpbatch.ListenUDP(netip.MustParseAddrPort("[::1]:0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, func(netip.AddrPort) (udpbatch.PacketConn, error) { return c, nil }
}

func start(t *testing.T, cfg Config) (*Endpoint, *sink) {
	t.Helper()
	return startClocked(t, cfg, nil)
}

// testClock is an endpoint clock that moves only when told to.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(1)
	return c
}

func (c *testClock) now() int64              { return c.ns.Load() }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// startClocked starts an endpoint whose timers read clk (nil: real time).
func startClocked(t *testing.T, cfg Config, clk *testClock) (*Endpoint, *sink) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	e, err := NewEndpoint(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if clk != nil {
		e.now = clk.now
	}
	s := newSink()
	e.Start(s)
	t.Cleanup(func() { e.Close() })
	return e, s
}

// ethFrame builds an Ethernet frame from src to dst MAC with a body.
func ethFrame(dst, src byte, body string) []byte {
	f := []byte{0x02, 0, 0, 0, 0, dst, 0x02, 0, 0, 0, 0, src, 0x08, 0x00}
	if dst == 0xff {
		copy(f[:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	return append(f, body...)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var (
	idServer = netip.MustParseAddr("2001:db8:a::1")
	idClient = netip.MustParseAddr("fdd9:f2f4:ed01::1")
)

func TestSymmetricLoopback(t *testing.T) {
	ca, la := loopback(t)
	cb, lb := loopback(t)
	a, sa := start(t, Config{Mode: Symmetric, VNI: 42, Local: netip.AddrPortFrom(idA, 0),
		Path: Target{Addr: cb.LocalAddr().Addr(), Port: cb.LocalAddr().Port()}, Remote: netip.PrefixFrom(idB, 128),
		Listen: la, Keepalive: 50 * time.Millisecond})
	b, sb := start(t, Config{Mode: Symmetric, VNI: 42, Local: netip.AddrPortFrom(idB, 0),
		Path: Target{Addr: ca.LocalAddr().Addr(), Port: ca.LocalAddr().Port()}, Remote: netip.PrefixFrom(idA, 128),
		Listen: lb, Keepalive: 50 * time.Millisecond})

	for i := 0; i < 10; i++ {
		fa, fb := ethFrame(2, 1, fmt.Sprint("a to b ", i)), ethFrame(1, 2, fmt.Sprint("b to a ", i))
		if _, err := a.SendFrames([][]byte{fa}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.SendFrames([][]byte{fb}); err != nil {
			t.Fatal(err)
		}
		sb.waitFor(t, fa)
		sa.waitFor(t, fb)
	}
	// Keepalives: OAM packets are answered, RTT measured, and none is delivered.
	waitUntil(t, "an RTT", func() bool { return a.Peers()[0].RTT > 0 && b.Peers()[0].RTT > 0 })
	if sa.count() != 10 || sb.count() != 10 {
		t.Fatalf("delivered %d and %d frames, want 10 each (OAM leaked?)", sa.count(), sb.count())
	}
	st := a.Peers()[0]
	if st.Identity != idB || st.Path != cb.LocalAddr() || time.Since(st.LastSeen) > time.Second || st.Silent {
		t.Fatalf("peer status %+v", st)
	}
	if a.Stats().TotalDrops() != 0 || b.Stats().TotalDrops() != 0 {
		t.Fatalf("drops: %d, %d", a.Stats().TotalDrops(), b.Stats().TotalDrops())
	}
	if a.Stats().FramesOut.Load() != 10 || b.Stats().FramesIn.Load() != 10 || a.Stats().OAMOut.Load() == 0 {
		t.Fatalf("counters: out %d in %d oam %d", a.Stats().FramesOut.Load(), b.Stats().FramesIn.Load(), a.Stats().OAMOut.Load())
	}
}

func TestServerThreeClients(t *testing.T) {
	cs, ls := loopback(t)
	srv, ss := start(t, Config{Mode: Server, VNI: 7, Local: netip.AddrPortFrom(idServer, 0),
		Remote: netip.MustParsePrefix("fdd9:f2f4:ed01::/64"), Listen: ls, Keepalive: time.Hour})
	path := Target{Addr: cs.LocalAddr().Addr(), Port: cs.LocalAddr().Port()}
	var clients []*Endpoint
	var sinks []*sink
	for i := 1; i <= 3; i++ {
		_, l := loopback(t)
		id := netip.MustParseAddr(fmt.Sprintf("fdd9:f2f4:ed01::%d", i))
		c, s := start(t, Config{Mode: Client, VNI: 7, Local: netip.AddrPortFrom(id, 0), Path: path,
			Remote: netip.PrefixFrom(idServer, 128), Listen: l, Keepalive: time.Hour})
		clients, sinks = append(clients, c), append(sinks, s)
	}
	// The first echo request of each client teaches the server its path,
	// proven by the client's answer to the server's challenge.
	waitUntil(t, "three peers with proven paths", func() bool {
		ps := srv.Peers()
		for _, p := range ps {
			if !p.Path.IsValid() {
				return false
			}
		}
		return len(ps) == 3
	})
	// Client 1 broadcasts: the server's stack and clients 2 and 3 get it.
	bc := ethFrame(0xff, 1, "who has")
	clients[0].SendFrames([][]byte{bc})
	ss.waitFor(t, bc)
	sinks[1].waitFor(t, bc)
	sinks[2].waitFor(t, bc)
	// Client 2 answers client 1 by MAC: switched to client 1 alone.
	uc := ethFrame(1, 2, "is at")
	clients[1].SendFrames([][]byte{uc})
	sinks[0].waitFor(t, uc)
	// A broadcast client 2 sends next reaches client 3 after anything the
	// server forwarded to it before: once it is there, a leak would be too.
	marker := ethFrame(0xff, 2, "marker 1")
	clients[1].SendFrames([][]byte{marker})
	sinks[2].waitFor(t, marker)
	if sinks[2].has(uc) {
		t.Fatal("client 3 got the unicast for client 1")
	}
	// The server's own stack sends to client 3's MAC (learned from nothing
	// yet: flooded), then client 3 speaks and the next one goes only to it.
	hello := ethFrame(0xff, 3, "hello")
	clients[2].SendFrames([][]byte{hello})
	ss.waitFor(t, hello) // the server learned client 3's MAC as it took the frame in
	to3 := ethFrame(3, 0x10, "for 3 only")
	srv.SendFrames([][]byte{to3})
	sinks[2].waitFor(t, to3)
	marker = ethFrame(0xff, 0x10, "marker 2") // as above, from the server
	srv.SendFrames([][]byte{marker})
	sinks[0].waitFor(t, marker)
	sinks[1].waitFor(t, marker)
	for i := 0; i < 2; i++ {
		if sinks[i].has(to3) {
			t.Fatalf("client %d got a frame for client 3", i+1)
		}
	}
	if d := srv.Stats().TotalDrops(); d != 0 {
		t.Fatalf("server drops %d", d)
	}
}

// TestReceiverDrops: each kind of bad packet is dropped, counted under its
// reason, never delivered, and never moves the learned path.
func TestReceiverDrops(t *testing.T) {
	cs, ls := loopback(t)
	srv, ss := start(t, Config{Mode: Server, VNI: 7, Local: netip.AddrPortFrom(idServer, 0),
		Remote: netip.MustParsePrefix("fdd9:f2f4:ed01::/64"), Listen: ls, Keepalive: time.Hour, MaxPeers: 1})
	_, lc := loopback(t)
	c, _ := start(t, Config{Mode: Client, VNI: 7, Local: netip.AddrPortFrom(idClient, 0),
		Path:   Target{Addr: cs.LocalAddr().Addr(), Port: cs.LocalAddr().Port()},
		Remote: netip.PrefixFrom(idServer, 128), Listen: lc, Keepalive: time.Hour})
	waitUntil(t, "the client", func() bool { p := srv.Peers(); return len(p) == 1 && p[0].Path.IsValid() })
	good := srv.Peers()[0].Path

	attacker, _ := loopback(t)
	frame := ethFrame(0x10, 1, "payload")
	build := func(vni uint32, opts ...[]byte) []byte {
		h := geneve.Header{Protocol: geneve.ProtocolEthernet, VNI: vni}
		for _, o := range opts {
			h.OptionBytes = append(h.OptionBytes, o...)
		}
		b, err := h.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		return append(b, frame...)
	}
	opt := func(src, dst netip.Addr) []byte {
		o, err := AppendOption(nil, Endpoints{Src: src, Dst: dst})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	goodOpt := opt(idClient, idServer)
	critical, _ := geneve.AppendOption(nil, geneve.Option{Class: 0x0999, Type: 0x80})
	for _, tc := range []struct {
		name   string
		pkt    []byte
		reason DropReason
	}{
		{"garbage", []byte("definitely not geneve"), DropMalformed},
		{"truncated", build(7, goodOpt)[:20], DropMalformed},
		{"version", append([]byte{0x40}, build(7, goodOpt)[1:]...), DropMalformed},
		{"wrong vni", build(8, goodOpt), DropVNI},
		{"unknown critical", build(7, goodOpt, critical), DropCritical},
		{"no option", build(7), DropOption},
		{"two options", build(7, goodOpt, goodOpt), DropOption},
		{"not for me", build(7, opt(idClient, idB)), DropIdentity},
		{"identity outside REMOTE", build(7, opt(idB, idServer)), DropIdentity},
		{"new peer over the cap", build(7, opt(netip.MustParseAddr("fdd9:f2f4:ed01::99"), idServer)), DropPeerLimit},
	} {
		before := srv.Stats().Drops(tc.reason)
		attacker.WriteBatch([]udpbatch.Message{{Buf: tc.pkt, Addr: cs.LocalAddr()}})
		waitUntil(t, tc.name+" counted", func() bool { return srv.Stats().Drops(tc.reason) == before+1 })
	}
	if ss.count() != 0 {
		t.Fatalf("%d bad frames delivered", ss.count())
	}
	if p := srv.Peers(); len(p) != 1 || p[0].Path != good {
		t.Fatalf("peers %+v, want one at %s", p, good)
	}
	// A valid packet from a new address that answers the challenge does
	// move the path: roaming. (Challenges are rate-limited: a roaming
	// client keeps sending, and so does this.)
	answerer(t, attacker, idClient, idServer)
	waitUntil(t, "roaming", func() bool {
		attacker.WriteBatch([]udpbatch.Message{{Buf: build(7, goodOpt), Addr: cs.LocalAddr()}})
		time.Sleep(20 * time.Millisecond)
		return srv.Peers()[0].Path == attacker.LocalAddr()
	})
	ss.waitFor(t, frame)
	_ = c
}

// TestServerExpiresIdlePeers: a client heard from no longer than
// PeerTimeout is forgotten, and its slot is free for another.
func TestServerExpiresIdlePeers(t *testing.T) {
	cs, ls := loopback(t)
	srv, _ := start(t, Config{Mode: Server, VNI: 7, Local: netip.AddrPortFrom(idServer, 0),
		Remote: netip.MustParsePrefix("fdd9:f2f4:ed01::/64"), Listen: ls, Keepalive: time.Hour,
		MaxPeers: 1, PeerTimeout: 300 * time.Millisecond})
	path := Target{Addr: cs.LocalAddr().Addr(), Port: cs.LocalAddr().Port()}
	_, l1 := loopback(t)
	c1, _ := start(t, Config{Mode: Client, VNI: 7, Local: netip.AddrPortFrom(idClient, 0), Path: path,
		Remote: netip.PrefixFrom(idServer, 128), Listen: l1, Keepalive: time.Hour})
	waitUntil(t, "the first client", func() bool { return len(srv.Peers()) == 1 })
	c1.Close()
	waitUntil(t, "the first client to expire", func() bool { return len(srv.Peers()) == 0 })
	_, l2 := loopback(t)
	start(t, Config{Mode: Client, VNI: 7, Local: netip.AddrPortFrom(netip.MustParseAddr("fdd9:f2f4:ed01::2"), 0), Path: path,
		Remote: netip.PrefixFrom(idServer, 128), Listen: l2, Keepalive: time.Hour})
	waitUntil(t, "the second client in the freed slot", func() bool {
		p := srv.Peers()
		return len(p) == 1 && p[0].Identity == netip.MustParseAddr("fdd9:f2f4:ed01::2")
	})
	if srv.Stats().Drops(DropPeerLimit) != 0 {
		t.Fatalf("%d peer-limit drops", srv.Stats().Drops(DropPeerLimit))
	}
}

// TestPathMovesRateLimited: valid packets from two sources in quick
// succession move the path once; after the interval, the newest wins.
func TestPathMovesRateLimited(t *testing.T) {
	cs, ls := loopback(t)
	clk := newTestClock()
	srv, _ := startClocked(t, Config{Mode: Server, VNI: 7, Local: netip.AddrPortFrom(idServer, 0),
		Remote: netip.MustParsePrefix("fdd9:f2f4:ed01::/64"), Listen: ls, Keepalive: time.Hour}, clk)
	opt, _ := AppendOption(nil, Endpoints{Src: idClient, Dst: idServer})
	pkt, _ := (&geneve.Header{Protocol: geneve.ProtocolEthernet, VNI: 7, OptionBytes: opt}).Append(nil)
	pkt = append(pkt, ethFrame(0x10, 1, "roaming")...)
	a, _ := loopback(t)
	b, _ := loopback(t)
	answerer(t, a, idClient, idServer)
	answerer(t, b, idClient, idServer)
	a.WriteBatch([]udpbatch.Message{{Buf: pkt, Addr: cs.LocalAddr()}})
	waitUntil(t, "the first path", func() bool { return len(srv.Peers()) == 1 && srv.Peers()[0].Path == a.LocalAddr() })
	a.WriteBatch([]udpbatch.Message{{Buf: pkt, Addr: cs.LocalAddr()}}) // a second packet: lastMove is set by the move above
	b.WriteBatch([]udpbatch.Message{{Buf: pkt, Addr: cs.LocalAddr()}})
	waitUntil(t, "the held move counted", func() bool { return srv.Stats().PathHeld.Load() >= 1 })
	if srv.Peers()[0].Path != a.LocalAddr() {
		t.Fatal("the path moved twice within the interval")
	}
	clk.advance(minMoveInterval - 1) // one nanosecond short: still held
	b.WriteBatch([]udpbatch.Message{{Buf: pkt, Addr: cs.LocalAddr()}})
	waitUntil(t, "the second held move counted", func() bool { return srv.Stats().PathHeld.Load() >= 2 })
	if srv.Peers()[0].Path != a.LocalAddr() {
		t.Fatal("the path moved before the interval ended")
	}
	clk.advance(1)
	b.WriteBatch([]udpbatch.Message{{Buf: pkt, Addr: cs.LocalAddr()}})
	waitUntil(t, "the move after the interval", func() bool { return srv.Peers()[0].Path == b.LocalAddr() })
}

// TestReceiveBatchMemo: within one batch the receive path reuses the
// previous packet's sender and switch answers only while they still hold.
// Two clients' frames interleave; each must be learned behind its own
// client, switched to the other, and a new source address behind the same
// client learned too.
func TestReceiveBatchMemo(t *testing.T) {
	e := discardEndpoint(t, Config{Mode: Server, VNI: 42, Local: netip.AddrPortFrom(idA, 6081),
		Remote: netip.MustParsePrefix("fdd9:f2f4:ed01::/64")})
	b, c := netip.MustParseAddr("fdd9:f2f4:ed01::b"), netip.MustParseAddr("fdd9:f2f4:ed01::c")
	fromB, fromC := netip.MustParseAddrPort("[64:ff9b::c000:201]:1000"), netip.MustParseAddrPort("[64:ff9b::c000:202]:2000")
	e.SendFrames([][]byte{ethFrame(1, 0x10, "local")}) // the stack's MAC, 0x10
	type step struct {
		id        netip.Addr
		from      netip.AddrPort
		dst, src  byte
		local     bool   // delivered to the stack
		forwarded string // the peer it was queued for, "" for none
	}
	steps := []step{
		{b, fromB, 0x10, 0xb1, true, ""},   // B's MAC learned
		{b, fromB, 0x10, 0xb1, true, ""},   // the same again, from the memo
		{c, fromC, 0xb1, 0xc1, false, "b"}, // a new sender: C's MAC learned, switched to B
		{b, fromB, 0xc1, 0xb1, false, "c"}, // back to B: switched to C
		{b, fromB, 0xc1, 0xb2, false, "c"}, // a second MAC behind B
		{c, fromC, 0xb2, 0xc1, false, "b"}, // ... learned behind B
	}
	rx := &rxState{deliver: make([][]byte, 0, 8), out: newSendBatch(8)}
	rx.startBatch()
	now := e.clock()
	for i, s := range steps {
		in := peerPacket(e, s.id, ethFrame(s.dst, s.src, "x"))
		before := rx.out.n
		m := udpbatch.Message{Buf: in, N: len(in), Addr: s.from}
		e.receive(&m, now, rx)
		local := len(rx.deliver) > 0
		rx.deliver = rx.deliver[:0]
		var sent []int // frames queued, not path challenges
		for j := before; j < rx.out.n; j++ {
			if !rx.out.oam[j] {
				sent = append(sent, j)
			}
		}
		forwarded := ""
		if len(sent) == 1 {
			forwarded = map[netip.Addr]string{b: "b", c: "c"}[rx.out.peers[sent[0]].id]
		} else if len(sent) > 1 {
			forwarded = "flooded"
		}
		proveAll(e)
		if local != s.local || forwarded != s.forwarded {
			t.Fatalf("step %d: delivered %v, forwarded to %q; want %v, %q", i, local, forwarded, s.local, s.forwarded)
		}
	}
	if d := e.Stats().TotalDrops(); d != 1 { // the stack's first frame, before any peer
		t.Fatalf("%d drops", d)
	}
}
