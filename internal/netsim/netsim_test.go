package netsim

import (
	"net/netip"
	"testing"
	"time"

	"geneve64/nat64"
	"geneve64/nat64/udpbatch"
)

var (
	ip = netip.MustParseAddr
	ap = netip.MustParseAddrPort
)

// datagram is one packet a test socket received.
type datagram struct {
	from netip.AddrPort
	data string
}

// inbox reads c until it closes, one datagram at a time.
func inbox(c udpbatch.PacketConn) <-chan datagram {
	ch := make(chan datagram, 64)
	go func() {
		msgs := []udpbatch.Message{{Buf: make([]byte, 2048)}}
		for {
			if _, err := c.ReadBatch(msgs); err != nil {
				return
			}
			ch <- datagram{msgs[0].Addr, string(msgs[0].Buf[:msgs[0].N])}
		}
	}()
	return ch
}

// recv takes the next datagram of an inbox, or reports none within 300 ms.
func recv(t *testing.T, in <-chan datagram) (netip.AddrPort, string, bool) {
	t.Helper()
	select {
	case d := <-in:
		return d.from, d.data, true
	case <-time.After(300 * time.Millisecond):
		return netip.AddrPort{}, "", false
	}
}

func send(t *testing.T, c udpbatch.PacketConn, to netip.AddrPort, data string) {
	t.Helper()
	if _, err := c.WriteBatch([]udpbatch.Message{{Buf: []byte(data), Addr: to}}); err != nil {
		t.Fatal(err)
	}
}

func listen(t *testing.T, h *Host, a string) udpbatch.PacketConn {
	t.Helper()
	c, err := h.Listen(ap(a))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestNAT64Mapping: an IPv6-only host reaches an IPv4 server through a
// NAT64: the server sees the NAT's public address with a random port, its
// reply comes back from the synthesized address, and a stranger's packet to
// the same mapping is filtered (address- and port-dependent filtering).
func TestNAT64Mapping(t *testing.T) {
	site, inet := NewSegment("site"), NewSegment("internet")
	nat := NewNAT("nat", site, inet, NATConfig{Public: ip("198.51.100.7"), Prefix: nat64.WellKnownPrefix})
	host := NewHost("host", site, ip("2001:db8:a::1"))
	server := NewHost("server", inet, ip("203.0.113.90"))
	stranger := NewHost("stranger", inet, ip("192.0.2.66"))
	hc := listen(t, host, "[::]:7000")
	sc := listen(t, server, "0.0.0.0:6081")
	xc := listen(t, stranger, "0.0.0.0:9")
	hin, sin := inbox(hc), inbox(sc)

	send(t, hc, ap("[64:ff9b::203.0.113.90]:6081"), "hello")
	from, got, ok := recv(t, sin)
	if !ok || got != "hello" || from.Addr() != ip("198.51.100.7") || from.Port() == 7000 {
		t.Fatalf("server got %q from %s, want the NAT's public address on a random port", got, from)
	}
	if nat.Mappings() != 1 {
		t.Fatalf("%d mappings", nat.Mappings())
	}
	send(t, sc, from, "reply")
	if rf, rg, ok := recv(t, hin); !ok || rg != "reply" || rf != ap("[64:ff9b::cb00:715a]:6081") {
		t.Fatalf("host got %q from %s", rg, rf)
	}
	before := nat.Filtered.Load()
	send(t, xc, from, "unsolicited")
	if _, g, ok := recv(t, hin); ok {
		t.Fatalf("a stranger's %q passed the NAT", g)
	}
	if nat.Filtered.Load() != before+1 {
		t.Fatal("the stranger's packet was not counted as filtered")
	}
	// Rebinding forgets the mapping: the server's next reply is filtered.
	nat.Rebind()
	send(t, sc, from, "late")
	if _, g, ok := recv(t, hin); ok {
		t.Fatalf("%q passed a rebound NAT", g)
	}
}

// TestFaults: loss drops what it says, and the policer takes a socket's
// GSO train (consecutive datagrams to one destination in one batch) as one
// packet: it passes or is lost whole.
func TestFaults(t *testing.T) {
	seg := NewSegment("lan")
	a := NewHost("a", seg, ip("2001:db8::a"))
	b := NewHost("b", seg, ip("2001:db8::b"))
	ac, bin := listen(t, a, "[::]:1"), inbox(listen(t, b, "[::]:2"))
	to := ap("[2001:db8::b]:2")
	count := func(n int) int {
		got := 0
		for range n {
			if _, _, ok := recv(t, bin); !ok {
				break
			}
			got++
		}
		return got
	}
	seg.SetFaults(Faults{Loss: 1})
	send(t, ac, to, "lost")
	if count(1) != 0 {
		t.Fatal("a packet passed 100% loss")
	}
	seg.SetFaults(Faults{Rate: 1, Burst: 1}) // one token, refilled once a second
	train := make([]udpbatch.Message, 10)
	for i := range train {
		train[i] = udpbatch.Message{Buf: []byte("frame"), Addr: to}
	}
	ac.WriteBatch(train) // one train: takes the one token, passes whole
	ac.WriteBatch(train) // another: no token left, lost whole
	if n := count(20); n != 10 {
		t.Fatalf("%d of two 10-frame trains passed a 1-token policer, want the first whole", n)
	}
}
