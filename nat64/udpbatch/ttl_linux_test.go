package udpbatch

import (
	"net/netip"
	"testing"
	"time"
)

// TestTTLThroughSockets: datagrams written with a TTL arrive with it, as
// the receiving socket reports it, batched and coalesced alike: what the
// gateway decrements. A socket not asked for TTLs reports 0.
func TestTTLThroughSockets(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		rx, err := ListenConfig{TTL: true}.Listen(netip.MustParseAddrPort(addr))
		if err != nil {
			t.Fatal(err)
		}
		defer rx.Close()
		tx, err := ListenConfig{TTL: true}.Listen(netip.MustParseAddrPort(addr))
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Close()
		// Runs of equal size and TTL may be sent as one GSO datagram;
		// a change of TTL must start a new one.
		var out []Message
		ttls := []uint8{1, 1, 1, 37, 37, 63, 255, 255}
		for _, ttl := range ttls {
			out = append(out, Message{Buf: make([]byte, 100), Addr: rx.LocalAddr(), TTL: ttl})
		}
		if n, err := tx.WriteBatch(out); err != nil || n != len(out) {
			t.Fatalf("%s: wrote %d: %v", addr, n, err)
		}
		in := make([]Message, 16)
		var got []uint8
		for len(got) < len(ttls) {
			for i := range in {
				in[i].Buf = make([]byte, 2048)
			}
			n, err := rx.ReadBatch(in)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range in[:n] {
				got = append(got, m.TTL)
			}
		}
		for i := range ttls {
			if got[i] != ttls[i] {
				t.Fatalf("%s: sent TTLs %v, received %v", addr, ttls, got)
			}
		}
	}
	plain, _ := ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	defer plain.Close()
	tx, _ := ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	defer tx.Close()
	tx.WriteBatch([]Message{{Buf: []byte("x"), Addr: plain.LocalAddr()}})
	in := []Message{{Buf: make([]byte, 64), TTL: 99}}
	if _, err := plain.ReadBatch(in); err != nil || in[0].TTL != 0 {
		t.Fatalf("a socket not asked for TTLs reported %d (%v)", in[0].TTL, err)
	}
}

// TestDropsCounted: datagrams the kernel dropped for a full receive
// buffer are counted. The kernel stamps its count on each datagram it
// queues, so it shows on the first one queued after the drops.
func TestDropsCounted(t *testing.T) {
	rx, err := ListenConfig{}.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, _ := ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	defer tx.Close()
	out := make([]Message, 64)
	for i := range out {
		out[i] = Message{Buf: make([]byte, 1400), Addr: rx.LocalAddr()}
	}
	for range 20_000 / len(out) { // far more than any buffer holds, unread
		tx.WriteBatch(out)
	}
	seen := make(chan struct{})
	go func() {
		in := make([]Message, 64)
		for {
			for i := range in {
				in[i].Buf = make([]byte, 2048)
			}
			n, err := rx.ReadBatch(in)
			if err != nil {
				return
			}
			for _, m := range in[:n] {
				if string(m.Buf[:m.N]) == "marker" {
					close(seen)
					return
				}
			}
		}
	}()
	marker := []Message{{Buf: []byte("marker"), Addr: rx.LocalAddr()}}
	deadline := time.After(5 * time.Second)
	for done := false; !done; {
		tx.WriteBatch(marker)
		select {
		case <-seen:
			done = true
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatal("no marker got through")
		}
	}
	if rx.Drops() == 0 {
		t.Fatal("20,000 datagrams sent unread, and no drops counted")
	}
	t.Logf("%d dropped", rx.Drops())
}
