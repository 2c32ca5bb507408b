package dnsclient

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// TestRetransmits: a server that ignores the first query is asked again,
// and the answer arrives well within the deadline.
func TestRetransmits(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 512)
		for seen := 0; ; seen++ {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if seen == 0 {
				continue // the first query is "lost"
			}
			var m dnsmessage.Message
			m.Unpack(buf[:n])
			m.Header.Response = true
			m.Answers = []dnsmessage.Resource{{
				Header: dnsmessage.ResourceHeader{Name: m.Questions[0].Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET},
				Body:   &dnsmessage.AResource{A: [4]byte{10, 42, 0, 1}},
			}}
			b, _ := m.Pack()
			pc.WriteTo(b, from)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	addrs, err := Lookup(ctx, Server(pc.LocalAddr().String()), "example.test", dnsmessage.TypeA)
	if err != nil || len(addrs) != 1 || addrs[0] != netip.MustParseAddr("10.42.0.1") {
		t.Fatalf("%v %v", addrs, err)
	}
	if d := time.Since(start); d < retransmit || d > 3*retransmit {
		t.Fatalf("answered after %v: want one retransmission", d)
	}
}
