package gateway

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

var (
	from = netip.MustParseAddrPort("[2001:db8:64::c633:6407]:40123")
	to   = netip.MustParseAddrPort("[2001:db8:b::1]:6081")
)

// TestIPv6UDPChecksum: gVisor's independent header code finds our packets'
// checksums valid, and ours round-trips through parseIPv6UDP.
func TestIPv6UDPChecksum(t *testing.T) {
	for _, n := range []int{0, 1, 7, 100, 1452, 9000} {
		payload := bytes.Repeat([]byte{0xa5, 0x5a, 0x01}, n)[:n]
		pkt := appendIPv6UDP(nil, from, to, payload)
		ip := header.IPv6(pkt)
		if !ip.IsValid(len(pkt)) {
			t.Fatalf("%d: invalid IPv6 header", n)
		}
		u := header.UDP(ip.Payload())
		if !u.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(u.Payload(), 0)) {
			t.Fatalf("%d: gVisor says the UDP checksum %#04x is wrong", n, u.Checksum())
		}
		s, d, p, err := parseIPv6UDP(pkt)
		if err != nil || s != from || d != to || !bytes.Equal(p, payload) {
			t.Fatalf("%d: parsed %s %s %d bytes, %v", n, s, d, len(p), err)
		}
	}
}

func TestChecksumZeroIsSentAsFFFF(t *testing.T) {
	// Find a payload whose checksum comes out as zero: it must be sent as 0xffff.
	for i := 0; i < 1<<20; i++ {
		payload := binary.BigEndian.AppendUint32(nil, uint32(i))
		pkt := appendIPv6UDP(nil, from, to, payload)
		if binary.BigEndian.Uint16(pkt[46:48]) == 0 {
			t.Fatal("checksum sent as 0")
		}
		if binary.BigEndian.Uint16(pkt[46:48]) == 0xffff {
			return // found one, and it was sent as 0xffff
		}
	}
	t.Skip("no payload with checksum 0 in the range tried")
}

// TestFragment: a packet over the MTU is cut into valid fragments whose
// data reassembles to the original; one that fits passes unchanged.
func TestFragment(t *testing.T) {
	payload := make([]byte, 3000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	pkt := appendIPv6UDP(nil, from, to, payload)
	var frags [][]byte
	err := fragment(pkt, 1280, 0xdeadbeef, nil, func(f []byte) error {
		frags = append(frags, bytes.Clone(f))
		return nil
	})
	if err != nil || len(frags) != 3 {
		t.Fatalf("%d fragments, %v", len(frags), err)
	}
	var body []byte
	for i, f := range frags {
		if len(f) > 1280 || f[6] != protoFragment || binary.BigEndian.Uint16(f[4:6]) != uint16(len(f)-ipv6HeaderLen) {
			t.Fatalf("fragment %d: %d bytes, next header %d", i, len(f), f[6])
		}
		fh := header.IPv6Fragment(f[ipv6HeaderLen:])
		if fh.NextHeader() != protoUDP || fh.ID() != 0xdeadbeef || int(fh.FragmentOffset())*8 != len(body) || fh.More() != (i < 2) {
			t.Fatalf("fragment %d header: next %d id %#x offset %d more %v", i, fh.NextHeader(), fh.ID(), fh.FragmentOffset(), fh.More())
		}
		body = append(body, f[ipv6HeaderLen+fragHeaderLen:]...)
	}
	if !bytes.Equal(body, pkt[ipv6HeaderLen:]) {
		t.Fatal("fragments do not reassemble to the packet")
	}
	// A packet that fits goes out as it is.
	small := appendIPv6UDP(nil, from, to, payload[:100])
	var got []byte
	fragment(small, 1280, 1, nil, func(f []byte) error { got = f; return nil })
	if !bytes.Equal(got, small) {
		t.Fatal("small packet changed")
	}
	// Fragments read back from the TUN are reported, not misparsed.
	if _, _, _, err := parseIPv6UDP(frags[0]); err != errFragment {
		t.Fatalf("parsing a fragment: %v", err)
	}
}

func FuzzParseIPv6UDP(f *testing.F) {
	f.Add(appendIPv6UDP(nil, from, to, []byte("geneve")))
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, p []byte) {
		_, _, payload, err := parseIPv6UDP(p)
		if err == nil && len(payload) > len(p) {
			t.Fatalf("payload %d bytes from a %d-byte packet", len(payload), len(p))
		}
	})
}

// TestChecksumMatchesReference: the 64-bit summing agrees with the plain
// 16-bit definition of RFC 768/8200 for every length and content tried.
func TestChecksumMatchesReference(t *testing.T) {
	ref := func(src, dst, udp []byte) uint16 {
		var sum uint32
		for _, b := range [][]byte{src, dst, udp} {
			for i := 0; i+1 < len(b); i += 2 {
				sum += uint32(b[i])<<8 | uint32(b[i+1])
			}
			if len(b)%2 == 1 {
				sum += uint32(b[len(b)-1]) << 8
			}
		}
		sum += uint32(len(udp)) + protoUDP
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		if c := ^uint16(sum); c != 0 {
			return c
		}
		return 0xffff
	}
	rng := rand.New(rand.NewPCG(1, 2))
	src, dst := make([]byte, 16), make([]byte, 16)
	for n := 0; n < 2000; n++ {
		udp := make([]byte, n%1500+8)
		for _, b := range [][]byte{src, dst, udp} {
			for i := range b {
				b[i] = byte(rng.Uint32())
				if n%7 == 0 {
					b[i] = 0xff // long carries
				}
			}
		}
		if got, want := udpChecksum(src, dst, udp), ref(src, dst, udp); got != want {
			t.Fatalf("length %d: %#04x, reference %#04x", len(udp), got, want)
		}
	}
}
