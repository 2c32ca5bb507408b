package udpbatch

import (
	"net/netip"
	"testing"
)

// TestWriteWrongFamily: a datagram for an IPv6 peer on an IPv4 socket is
// refused with an error, not a panic, and the socket still sends.
func TestWriteWrongFamily(t *testing.T) {
	c, err := ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := c.WriteBatch([]Message{{Buf: []byte("x"), Addr: netip.MustParseAddrPort("[2001:db8::1]:6081")}}); err == nil || n != 0 {
		t.Fatalf("sent %d to an IPv6 peer from an IPv4 socket, err %v", n, err)
	}
	if n, err := c.WriteBatch([]Message{{Buf: []byte("x"), Addr: c.LocalAddr()}}); err != nil || n != 1 {
		t.Fatalf("then to itself: sent %d, %v", n, err)
	}
}
