package nat64

import (
	"encoding/hex"
	"strings"
	"testing"

	"geneve64/geneve"
)

// The known-answer vector of docs/PROTOCOL.md, "Authenticated mode": an
// Ethernet frame from 2001:db8:a::1 to 2001:db8:b::1 on VNI 42, signed with
// the key of 32 bytes 0x42, sender 0x0102030405060708 and counter
// 0x1122334455667788. Another implementation that signs the same bytes must
// produce this packet, tag included.
const (
	katSender  = 0x0102030405060708
	katCounter = 0x1122334455667788
	katPacket  = `
		1240655800002a00 0162010820010db8 000a000000000000 0000000120010db8
		000b000000000000 00000001fff08108 0102030405060708 1122334455667788
		7238491d3daa6fd6 bcbf5e3de971c5bb 0200000000020200 0000000108006175
		7468656e74696361 746564207061796c 6f6164`
)

// katSigned is the packet signed() builds (the one TestAuthSignVerify
// flips bits in), with the vector's sender and counter.
func katSigned(t *testing.T) []byte {
	t.Helper()
	a := newAuthenticator(testKey)
	a.sender = katSender
	a.counter.Store(katCounter - 1)
	pkt, _ := signed(t, a)
	return pkt
}

// TestAuthKnownAnswer holds the signer to the documented vector, and the
// verifier to accepting it.
func TestAuthKnownAnswer(t *testing.T) {
	pkt := katSigned(t)
	want := strings.Join(strings.Fields(katPacket), "")
	if got := hex.EncodeToString(pkt); got != want {
		t.Fatalf("signed packet\n%s\nwant (docs/PROTOCOL.md)\n%s", got, want)
	}
	h, _, err := geneve.Parse(pkt)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := newAuthenticator(testKey).verify(&h, pkt)
	if !ok || st.sender != katSender || st.counter != katCounter {
		t.Fatalf("verify: %+v %v", st, ok)
	}
}
