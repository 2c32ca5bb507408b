package stack

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestTCPConns: an accepted connection with 5 unread bytes shows at the
// receiver as ESTABLISHED, readable, with those bytes queued, and the
// listener is listed too.
func TestTCPConns(t *testing.T) {
	a, b := pair(t, IP, Config{Addrs: addrA}, Config{Addrs: addrB})
	ln, err := b.Listen("tcp", "10.42.0.1:7071")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := a.DialContext(ctx(t), "tcp", "10.42.0.1:7071")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c.Write([]byte("hello"))
	s.(*TCPConn).WaitReadable()

	server := netip.MustParseAddrPort("10.42.0.1:7071")
	client := netip.MustParseAddrPort(c.LocalAddr().String())
	var got *TCPConnInfo
	var listener bool
	deadline := time.Now().Add(5 * time.Second)
	for got == nil || got.RecvQueue != 5 {
		got, listener = nil, false
		for _, i := range b.TCPConns() {
			switch {
			case i.Local == server && i.Remote == client:
				got = &i
			case i.Local.Port() == 7071 && i.State == "LISTEN":
				listener = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver: %+v; all: %v", got, b.TCPConns())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got.State != "ESTABLISHED" || !got.Readable || got.SegmentsReceived < 2 || !listener {
		t.Fatalf("receiver %v, listener listed %t", got, listener)
	}
	if s := got.String(); !strings.Contains(s, "ESTABLISHED 10.42.0.1:7071 -> "+client.String()+" recvq 5") {
		t.Fatalf("String: %q", s)
	}
}
