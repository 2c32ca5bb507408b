package gateway

import (
	"net"
	"testing"
	"time"
)

// TestTTLThroughSockets: a datagram sent with ttlMessage arrives with that
// TTL, as the receiving socket reports it: what the gateway decrements.
func TestTTLThroughSockets(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	if err := enableRecvTTL(rx); err != nil {
		t.Fatal(err)
	}
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	oob, roob := make([]byte, ttlOOBLen), make([]byte, 64)
	buf := make([]byte, 64)
	for _, ttl := range []uint8{1, 37, 63, 255} {
		if _, _, err := tx.WriteMsgUDPAddrPort([]byte("hop"), ttlMessage(oob, ttl), rx.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
			t.Fatal(err)
		}
		rx.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, oobn, _, _, err := rx.ReadMsgUDPAddrPort(buf, roob)
		if err != nil {
			t.Fatal(err)
		}
		if got := ttlOf(roob[:oobn]); got != ttl {
			t.Fatalf("sent TTL %d, received %d", ttl, got)
		}
	}
}

func TestDecrement(t *testing.T) {
	for _, tc := range []struct {
		in, out uint8
		ok      bool
	}{{64, 63, true}, {2, 1, true}, {1, 0, false}, {0, defaultHopLimit, true}, {255, 254, true}} {
		if out, ok := decrement(tc.in); out != tc.out || ok != tc.ok {
			t.Errorf("decrement(%d) = %d %v", tc.in, out, ok)
		}
	}
}
