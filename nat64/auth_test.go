package nat64

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"geneve64/geneve"
	"geneve64/nat64/udpbatch"
)

var testKey = bytes.Repeat([]byte{0x42}, 32)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  string
	}{
		{"QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=\n", 32, ""},
		{" 4242424242424242 \n 4242424242424242\n", 16, ""},
		{"QkJCQkJCQkJCQkJCQkJCQg", 16, ""},
		{"QkJC", 0, "3 bytes, need at least 16"},
		{"", 0, "empty"},
		{"not a key at all!", 0, "neither hex nor base64"},
	} {
		k, err := ParseKey([]byte(tc.in))
		if tc.err != "" {
			if !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || len(k) != tc.want {
			t.Errorf("%q: %d bytes, %v", tc.in, len(k), err)
		}
	}
}

// signed builds a packet with the NAT64 and authentication options, signed.
func signed(t *testing.T, a *authenticator) ([]byte, geneve.Header) {
	t.Helper()
	opts, _ := AppendOption(nil, Endpoints{Src: idA, Dst: idB})
	opts = appendAuthOption(opts)
	pkt, err := (&geneve.Header{Protocol: geneve.ProtocolEthernet, VNI: 42, OptionBytes: opts}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	pkt = append(pkt, ethFrame(2, 1, "authenticated payload")...)
	a.sign(pkt, geneve.HeaderLen+OptionLen)
	h, _, err := geneve.Parse(pkt)
	if err != nil {
		t.Fatal(err)
	}
	return pkt, h
}

// TestAuthSignVerify: a signed packet verifies; flipping any single bit
// anywhere in it, header, options or payload, makes it fail; another key
// fails; the counter grows.
func TestAuthSignVerify(t *testing.T) {
	a := newAuthenticator(testKey)
	pkt, h := signed(t, a)
	c1, ok := a.verify(&h, pkt)
	if !ok {
		t.Fatal("a signed packet does not verify")
	}
	for i := range pkt {
		for bit := 0; bit < 8; bit++ {
			bad := bytes.Clone(pkt)
			bad[i] ^= 1 << bit
			hb, _, err := geneve.Parse(bad)
			if err != nil {
				continue // no longer a GENEVE packet at all: dropped earlier
			}
			if _, ok := a.verify(&hb, bad); ok {
				t.Fatalf("byte %d bit %d flipped and still verified", i, bit)
			}
		}
	}
	if _, ok := newAuthenticator(bytes.Repeat([]byte{1}, 32)).verify(&h, pkt); ok {
		t.Fatal("verified with another key")
	}
	pkt2, h2 := signed(t, a)
	c2, ok := a.verify(&h2, pkt2)
	if !ok || c2.counter <= c1.counter {
		t.Fatalf("counters %d then %d", c1.counter, c2.counter)
	}
	if c1.counter < uint64(time.Now().Add(-time.Hour).UnixNano()) {
		t.Fatalf("counter %d does not start at the clock", c1.counter)
	}
	if c1.sender != a.sender || c2.sender != a.sender || newAuthenticator(testKey).sender == a.sender {
		t.Fatalf("senders %x, %x; want the authenticator's %x, and another for another authenticator", c1.sender, c2.sender, a.sender)
	}
}

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	base := uint64(1_000_000)
	for _, tc := range []struct {
		c    uint64
		want bool
	}{
		{base, true}, {base, false}, // a duplicate
		{base + 5, true}, {base + 3, true}, {base + 3, false}, // reordering inside the window
		{base + 1, true}, {base + 5, false},
		{base + 5000, true},                                     // a jump ahead
		{base + 5000 - 1023, true}, {base + 5000 - 1024, false}, // the window's edge
		{base + 2, false}, // long behind
		{0, false},
	} {
		if got := w.accept(tc.c); got != tc.want {
			t.Fatalf("accept(%d) = %v, want %v", tc.c-base, got, tc.want)
		}
	}
}

func TestAuthAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	a := newAuthenticator(testKey)
	pkt, h := signed(t, a)
	if n := testing.AllocsPerRun(1000, func() {
		a.sign(pkt, geneve.HeaderLen+OptionLen)
		if _, ok := a.verify(&h, pkt); !ok {
			panic("verify")
		}
	}); n != 0 {
		t.Fatalf("%v allocs per sign+verify", n)
	}
}

// TestAuthenticatedEndpoints: with the same key both ways, frames flow; a
// sender without the key, or with another, is dropped as "auth"; a
// receiver without the key drops keyed packets as an unknown critical
// option; a captured packet replayed from another address is dropped as
// "replay" and does not move the server's path.
func TestAuthenticatedEndpoints(t *testing.T) {
	cs, ls := loopback(t)
	srv, ss := start(t, Config{Mode: Server, VNI: 7, Local: netip.AddrPortFrom(idServer, 0), Key: testKey,
		Remote: netip.MustParsePrefix("fdd9:f2f4:ed01::/64"), Listen: ls, Keepalive: time.Hour})
	path := Target{Addr: cs.LocalAddr().Addr(), Port: cs.LocalAddr().Port()}
	// Record what the client sends, to replay it later.
	cc, _ := loopback(t)
	rec := &tapConn{PacketConn: cc}
	cli, sc := start(t, Config{Mode: Client, VNI: 7, Local: netip.AddrPortFrom(idClient, 0), Path: path, Key: testKey,
		Remote: netip.PrefixFrom(idServer, 128), Keepalive: time.Hour,
		Listen: func(netip.AddrPort) (udpbatch.PacketConn, error) { return rec, nil }})
	f1, f2 := ethFrame(0x10, 1, "to the server"), ethFrame(1, 0x10, "to the client")
	cli.SendFrames([][]byte{f1})
	ss.waitFor(t, f1)
	waitUntil(t, "the client's path proven", func() bool { p := srv.Peers(); return len(p) == 1 && p[0].Path.IsValid() })
	srv.SendFrames([][]byte{f2})
	sc.waitFor(t, f2)
	good := srv.Peers()[0].Path

	// No key, another key: dropped before anything else.
	for i, key := range [][]byte{nil, bytes.Repeat([]byte{7}, 32)} {
		_, l := loopback(t)
		e, _ := start(t, Config{Mode: Client, VNI: 7, Local: netip.AddrPortFrom(idClient, 0), Path: path, Key: key,
			Remote: netip.PrefixFrom(idServer, 128), Keepalive: time.Hour, Listen: l})
		before := srv.Stats().Drops(DropAuth)
		e.SendFrames([][]byte{ethFrame(0x10, 1, "forged")})
		waitUntil(t, "the forged frame counted", func() bool { return srv.Stats().Drops(DropAuth) > before })
		if srv.Peers()[0].Path != good {
			t.Fatalf("case %d moved the path", i)
		}
	}
	// The captured frame, replayed from another address.
	attacker, _ := loopback(t)
	captured := rec.last(t)
	before := srv.Stats().Drops(DropReplay)
	attacker.WriteBatch([]udpbatch.Message{{Buf: captured, Addr: cs.LocalAddr()}})
	waitUntil(t, "the replay counted", func() bool { return srv.Stats().Drops(DropReplay) > before })
	if srv.Peers()[0].Path != good {
		t.Fatal("a replayed frame moved the path")
	}
	// A receiver without the key: the critical option it does not know.
	cu, lu := loopback(t)
	plain, _ := start(t, Config{Mode: Server, VNI: 7, Local: netip.AddrPortFrom(idServer, 0),
		Remote: netip.MustParsePrefix("fdd9:f2f4:ed01::/64"), Listen: lu, Keepalive: time.Hour})
	attacker.WriteBatch([]udpbatch.Message{{Buf: captured, Addr: cu.LocalAddr()}})
	waitUntil(t, "the keyed frame dropped as critical", func() bool { return plain.Stats().Drops(DropCritical) == 1 })
	if hex.EncodeToString(captured[44:48]) != "fff08108" {
		t.Fatalf("auth option header %x, want class 0xfff0 type 0x81 length 8", captured[44:48])
	}
}

// tapConn records the last datagram written through it.
type tapConn struct {
	udpbatch.PacketConn
	mu   sync.Mutex
	data []byte
}

func (c *tapConn) WriteBatch(m []udpbatch.Message) (int, error) {
	for _, x := range m {
		h, _, err := geneve.Parse(x.Buf)
		if err == nil && !h.OAM {
			c.mu.Lock()
			c.data = bytes.Clone(x.Buf)
			c.mu.Unlock()
		}
	}
	return c.PacketConn.WriteBatch(m)
}

func (c *tapConn) last(t *testing.T) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.data == nil {
		t.Fatal("nothing recorded")
	}
	return c.data
}

func FuzzParseKey(f *testing.F) {
	f.Add([]byte("QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=\n"))
	f.Add([]byte("4242424242424242 4242424242424242"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKey(b)
		if err == nil && len(k) < MinKeyLen {
			t.Fatalf("accepted a %d-byte key", len(k))
		}
	})
}

// TestReplayFromNewPort: a client's captured packets, replayed from ports
// and hosts that never sent before, are refused as replays in both option
// modes: they create no peer and draw none of the server's traffic. With
// --no-option the window used to belong to the outer address, and the
// replay made a peer of the attacker.
func TestReplayFromNewPort(t *testing.T) {
	for _, noOption := range []bool{false, true} {
		t.Run(fmt.Sprintf("no-option=%v", noOption), func(t *testing.T) {
			cs, ls := loopback(t)
			remote := netip.MustParsePrefix("fdd9:f2f4:ed01::/64")
			if noOption {
				remote = netip.MustParsePrefix("::1/128") // plain GENEVE: REMOTE filters outer addresses
			}
			srv, ss := start(t, Config{Mode: Server, VNI: 7, Local: netip.AddrPortFrom(idServer, 0), Key: testKey,
				NoOption: noOption, Remote: remote, Listen: ls, Keepalive: time.Hour})
			cc, _ := loopback(t)
			rec := &tapConn{PacketConn: cc}
			cli, _ := start(t, Config{Mode: Client, VNI: 7, Local: netip.AddrPortFrom(idClient, 0), Key: testKey, NoOption: noOption,
				Path: Target{Addr: cs.LocalAddr().Addr(), Port: cs.LocalAddr().Port()}, Remote: netip.PrefixFrom(idServer, 128),
				Keepalive: time.Hour, Listen: func(netip.AddrPort) (udpbatch.PacketConn, error) { return rec, nil }})
			f := ethFrame(0x10, 1, "captured")
			cli.SendFrames([][]byte{f})
			ss.waitFor(t, f)
			captured := rec.last(t)
			for i := range 5 {
				attacker, err := net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("[::1]:0"))) // a new port each time
				if err != nil {
					t.Fatal(err)
				}
				defer attacker.Close()
				before := srv.Stats().Drops(DropReplay)
				attacker.WriteToUDPAddrPort(captured, cs.LocalAddr())
				waitUntil(t, "the replay refused", func() bool { return srv.Stats().Drops(DropReplay) > before })
				if n := len(srv.Peers()); n != 1 {
					t.Fatalf("replay %d: %d peers, want the one client", i, n)
				}
				// A broadcast from the server reaches its peers only: the
				// attacker's port must hear nothing.
				srv.SendFrames([][]byte{ethFrame(0xff, 0x20, "to every peer")})
				attacker.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				if n, err := attacker.Read(make([]byte, 2048)); err == nil {
					t.Fatalf("replay %d: the attacker's port received %d bytes from the server", i, n)
				}
			}
		})
	}
}
