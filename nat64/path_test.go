package nat64

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"geneve64/geneve"
	"geneve64/nat64/udpbatch"
)

// fakeResolver answers A and AAAA lookups from tables and counts calls.
type fakeResolver struct {
	a, aaaa map[string][]netip.Addr
	calls   atomic.Int32
	addr    atomic.Pointer[netip.Addr] // when set, overrides a[*]
}

func (r *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.calls.Add(1)
	if a := r.addr.Load(); a != nil && a.Is4() == (network == "ip4") {
		return []netip.Addr{*a}, nil
	}
	if network == "ip4" {
		if as := r.a[host]; len(as) > 0 {
			return as, nil
		}
	}
	if network == "ip6" {
		if as := r.aaaa[host]; len(as) > 0 {
			return as, nil
		}
	}
	return nil, errors.New("no such host")
}

// discardConn is a udpbatch.PacketConn whose reads block and whose writes vanish:
// enough to resolve paths and to count allocations.
type discardConn struct {
	local  netip.AddrPort
	closed chan struct{}
}

func newDiscardConn(local string) *discardConn {
	return &discardConn{local: netip.MustParseAddrPort(local), closed: make(chan struct{})}
}
func (d *discardConn) ReadBatch([]udpbatch.Message) (int, error) {
	<-d.closed
	return 0, errClosedForTest
}
func (d *discardConn) WriteBatch(m []udpbatch.Message) (int, error) { return len(m), nil }
func (d *discardConn) LocalAddr() netip.AddrPort                    { return d.local }
func (d *discardConn) BatchSize() int                               { return 8 }
func (d *discardConn) Close() error                                 { close(d.closed); return nil }

var errClosedForTest = errors.New("closed")

// discardEndpoint is an endpoint on a discardConn that is never started:
// tests and benchmarks drive its receive and send paths by hand. It is
// closed when tb ends.
func discardEndpoint(tb testing.TB, cfg Config) *Endpoint {
	tb.Helper()
	cfg.Logger = testLogger(tb)
	cfg.Listen = func(netip.AddrPort) (udpbatch.PacketConn, error) { return newDiscardConn("[2001:db8:a::1]:6081"), nil }
	e, err := NewEndpoint(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

func TestClientPathResolution(t *testing.T) {
	entry := netip.MustParseAddr("203.0.113.90")
	res := &fakeResolver{
		a:    map[string][]netip.Addr{"geneve-entry-point.example": {entry}},
		aaaa: map[string][]netip.Addr{"v6only.example": {netip.MustParseAddr("2001:db8:e::1")}},
	}
	dns := startDNS64(t, &dns64{answers: []netip.Addr{synth(t, "2001:db8:64::/96", wka1)}})
	for _, tc := range []struct {
		name    string
		path    string
		hasIPv4 bool
		prefix  string
		dns     string
		want    string
	}{
		{"ipv6 literal", "[2001:db8:a::1]:7000", false, "", "", "[2001:db8:a::1]:7000"},
		{"ipv6 literal, default port", "2001:db8:a::1", true, "", "", "[2001:db8:a::1]:6081"},
		{"ipv4 literal, host has ipv4", "203.0.113.90", true, "", "", "203.0.113.90:6081"},
		{"ipv4 literal through nat64", "203.0.113.90:7000", false, "64:ff9b::/96", "", "[64:ff9b::cb00:715a]:7000"},
		{"hostname through nat64, discovered prefix", "geneve-entry-point.example", false, "", dns.addr, "[2001:db8:64::cb00:715a]:6081"},
		{"hostname, host has ipv4", "geneve-entry-point.example", true, "", "", "203.0.113.90:6081"},
		{"hostname with only AAAA", "v6only.example", false, "", "", "[2001:db8:e::1]:6081"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := NewTarget(tc.path, 6081)
			if ap, err := netip.ParseAddrPort(tc.path); err == nil {
				target = Target{Addr: ap.Addr(), Port: ap.Port()}
			}
			cfg := Config{Mode: Client, VNI: 42, Local: netip.AddrPortFrom(idClient, 0), Path: target,
				Remote: netip.PrefixFrom(idServer, 128), Resolver: res, DNSServer: tc.dns,
				HasIPv4: func(netip.Addr) bool { return tc.hasIPv4 }, Logger: testLogger(t),
				Listen: func(netip.AddrPort) (udpbatch.PacketConn, error) { return newDiscardConn("[::]:40000"), nil }}
			if tc.prefix != "" {
				cfg.NAT64Prefix = netip.MustParsePrefix(tc.prefix)
			}
			e, err := NewEndpoint(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if got := e.Peers()[0].Path.String(); got != tc.want {
				t.Fatalf("path %s, want %s", got, tc.want)
			}
		})
	}
	// No IPv4, no prefix given, and no DNS64: a clear error.
	target := NewTarget("203.0.113.90", 6081)
	_, err := NewEndpoint(context.Background(), Config{Mode: Client, VNI: 42, Local: netip.AddrPortFrom(idClient, 0),
		Path: target, Remote: netip.PrefixFrom(idServer, 128), DNSServer: startDNS64(t, &dns64{}).addr,
		HasIPv4: func(netip.Addr) bool { return false }, Logger: testLogger(t),
		Listen: func(netip.AddrPort) (udpbatch.PacketConn, error) { return newDiscardConn("[::]:40000"), nil }})
	if !errors.Is(err, ErrNoNAT64) || !errors.Is(err, ErrNeedPrefix) || !strings.Contains(err.Error(), "203.0.113.90") {
		t.Fatalf("err = %v, want ErrNeedPrefix and ErrNoNAT64, naming the PATH", err)
	}
}

// TestSilentPeerReresolves: a peer that stops answering is reported silent
// after three keepalive intervals, and a hostname PATH is looked up again, so
// a server that moved to a new address is found there.
func TestSilentPeerReresolves(t *testing.T) {
	c1, l1 := loopback(t) // the server first lives at [::1]:P
	srv1, _ := start(t, Config{Mode: Server, VNI: 1, Local: netip.AddrPortFrom(idServer, 0),
		Remote: netip.PrefixFrom(idClient, 128), Listen: l1, Keepalive: time.Hour})
	port := c1.LocalAddr().Port()
	res := &fakeResolver{}
	res.addr.Store(ptr(netip.IPv6Loopback()))
	cc, err := udpbatch.ListenUDP(netip.MustParseAddrPort("[::]:0"))
	if err != nil {
		t.Fatal(err)
	}
	cli, _ := start(t, Config{Mode: Client, VNI: 1, Local: netip.AddrPortFrom(idClient, 0),
		Path: Target{Host: "server.example", Port: port}, Remote: netip.PrefixFrom(idServer, 128),
		Resolver: res, HasIPv4: func(netip.Addr) bool { return true }, Keepalive: 40 * time.Millisecond,
		Listen: func(netip.AddrPort) (udpbatch.PacketConn, error) { return cc, nil }})
	waitUntil(t, "an RTT", func() bool { return cli.Peers()[0].RTT > 0 })
	lookups := res.calls.Load()

	// The server moves to 127.0.0.1:P, and DNS says so.
	srv1.Close()
	c2, err := udpbatch.ListenUDP(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port))
	if err != nil {
		t.Fatal(err)
	}
	start(t, Config{Mode: Server, VNI: 1, Local: netip.AddrPortFrom(idServer, 0),
		Remote: netip.PrefixFrom(idClient, 128), Keepalive: time.Hour,
		Listen: func(netip.AddrPort) (udpbatch.PacketConn, error) { return c2, nil }})
	res.addr.Store(ptr(netip.MustParseAddr("127.0.0.1")))

	// Silence is what makes the client look PATH up again, and it can be
	// over before a poll of Silent sees it (the new address answers at
	// once): the second lookup is the proof that cannot be missed.
	waitUntil(t, "the peer to go silent and PATH looked up again", func() bool { return res.calls.Load() > lookups })
	waitUntil(t, "the peer heard again at its new address", func() bool {
		p := cli.Peers()[0]
		return !p.Silent && p.Path == c2.LocalAddr()
	})
}

func ptr[T any](v T) *T { return &v }

// TestPlainGENEVEOverIPv4: with the option off on both ends, addresses may
// be IPv4 and the outer side runs over IPv4; a NAT64 option that arrives
// anyway is ignored.
func TestPlainGENEVEOverIPv4(t *testing.T) {
	open := func() (udpbatch.PacketConn, ListenFunc) {
		c, err := udpbatch.ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, func(netip.AddrPort) (udpbatch.PacketConn, error) { return c, nil }
	}
	ca, la := open()
	cb, lb := open()
	a, sa := start(t, Config{Mode: Symmetric, VNI: 5001, NoOption: true, Local: ca.LocalAddr(),
		Path: Target{Addr: cb.LocalAddr().Addr(), Port: cb.LocalAddr().Port()}, Remote: netip.MustParsePrefix("127.0.0.1/32"),
		Listen: la, Keepalive: -1})
	b, sb := start(t, Config{Mode: Symmetric, VNI: 5001, Local: netip.AddrPortFrom(idB, 0), NoOption: true,
		Path: Target{Addr: ca.LocalAddr().Addr(), Port: ca.LocalAddr().Port()}, Remote: netip.MustParsePrefix("127.0.0.1/32"),
		Listen: lb, Keepalive: -1})
	fa, fb := ethFrame(2, 1, "plain a"), ethFrame(1, 2, "plain b")
	a.SendFrames([][]byte{fa})
	b.SendFrames([][]byte{fb})
	sb.waitFor(t, fa)
	sa.waitFor(t, fb)
	if len(a.header(idB, false)) != 8 {
		t.Fatalf("plain GENEVE header is %d bytes, want 8", len(a.header(idB, false)))
	}
	// A sender with the option, towards an endpoint without: delivered.
	opt, _ := AppendOption(nil, Endpoints{Src: idA, Dst: idB})
	h := []byte{byte(len(opt) / 4), 0, 0x65, 0x58, 0, 0x13, 0x89, 0}
	pkt := append(append(h, opt...), ethFrame(2, 9, "with option")...)
	ca.WriteBatch([]udpbatch.Message{{Buf: pkt, Addr: cb.LocalAddr()}})
	sb.waitFor(t, ethFrame(2, 9, "with option"))
}

// peerPacket is the packet a peer with identity id sends e: frame behind
// e's own header, with the option's endpoints turned round to {id, e}.
func peerPacket(e *Endpoint, id netip.Addr, frame []byte) []byte {
	in := append(e.header(e.cfg.Local.Addr(), false), frame...)
	copy(in[12:28], id.AsSlice())
	copy(in[28:44], e.cfg.Local.Addr().AsSlice())
	return in
}

// TestPacketPathAllocs: steady-state receive (check, deliver) and send
// (encapsulate, write) allocate nothing.
func TestPacketPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	e := discardEndpoint(t, Config{Mode: Auto, VNI: 42, Local: netip.AddrPortFrom(idA, 0),
		Path: Target{Addr: netip.MustParseAddr("64:ff9b::cb00:715a"), Port: 6081}, Remote: netip.PrefixFrom(idB, 128)})
	frame := ethFrame(2, 1, string(make([]byte, 1400)))
	in := peerPacket(e, idB, frame)
	from := netip.MustParseAddrPort("[64:ff9b::cb00:715a]:6081")
	rx := &rxState{deliver: make([][]byte, 0, 8), out: newSendBatch(8)}
	msg := udpbatch.Message{Buf: in, N: len(in), Addr: from}
	e.receive(&msg, e.clock(), rx) // first packet: learns the path
	rx.deliver = rx.deliver[:0]
	if n := testing.AllocsPerRun(1000, func() {
		e.receive(&msg, e.clock(), rx)
		rx.deliver = rx.deliver[:0]
	}); n != 0 || e.Stats().TotalDrops() != 0 {
		t.Fatalf("receive: %v allocs/op, %d drops", n, e.Stats().TotalDrops())
	}
	frames := [][]byte{frame, frame, frame, frame}
	e.SendFrames(frames) // warm the pool and grow its buffers
	if n := testing.AllocsPerRun(1000, func() { e.SendFrames(frames) }); n != 0 {
		t.Fatalf("send: %v allocs/op", n)
	}
}

// TestIPPayloadLabels: with IP payloads each packet's protocol type says
// what it carries, 0x0800 or 0x86DD.
func TestIPPayloadLabels(t *testing.T) {
	var got []uint16
	var mu sync.Mutex
	conn := &recordConn{discardConn: newDiscardConn("[2001:db8:a::1]:6081"), record: func(b []byte) {
		h, _, err := geneve.Parse(b)
		if err == nil && !h.OAM {
			mu.Lock()
			got = append(got, h.Protocol)
			mu.Unlock()
		}
	}}
	e, err := NewEndpoint(context.Background(), Config{Mode: Symmetric, VNI: 1, Local: netip.AddrPortFrom(idA, 0),
		Path: Target{Addr: idB, Port: 6081}, Remote: netip.PrefixFrom(idB, 128), Protocol: geneve.ProtocolIPv4,
		Logger: testLogger(t), Keepalive: -1, Listen: func(netip.AddrPort) (udpbatch.PacketConn, error) { return conn, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	v4, v6 := make([]byte, 20), make([]byte, 40)
	v4[0], v6[0] = 0x45, 0x60
	e.SendFrames([][]byte{v4, v6, v4})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || got[0] != geneve.ProtocolIPv4 || got[1] != geneve.ProtocolIPv6 || got[2] != geneve.ProtocolIPv4 {
		t.Fatalf("protocol types %#04x", got)
	}
}

type recordConn struct {
	*discardConn
	record func([]byte)
}

func (r *recordConn) WriteBatch(m []udpbatch.Message) (int, error) {
	for _, x := range m {
		r.record(x.Buf)
	}
	return len(m), nil
}
