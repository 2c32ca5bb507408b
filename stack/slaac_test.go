package stack

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// routerAdvertisement builds the Ethernet frame a site router sends: an
// ICMPv6 router advertisement to all nodes, with an autonomous on-link
// prefix and the router's link-layer address.
func routerAdvertisement(prefix netip.Prefix) []byte {
	routerMAC := []byte{0x02, 0, 0, 0, 0, 0xfe}
	src := netip.MustParseAddr("fe80::fe").As16()
	dst := netip.MustParseAddr("ff02::1").As16()
	icmp := []byte{134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0} // RA, lifetime 1800 s
	icmp = append(icmp, 3, 4, byte(prefix.Bits()), 0xc0)                    // prefix information: L and A
	icmp = binary.BigEndian.AppendUint32(icmp, 86400)                       // valid lifetime
	icmp = binary.BigEndian.AppendUint32(icmp, 14400)                       // preferred lifetime
	icmp = append(icmp, 0, 0, 0, 0)
	p := prefix.Addr().As16()
	icmp = append(icmp, p[:]...)
	icmp = append(icmp, 1, 1) // source link-layer address
	icmp = append(icmp, routerMAC...)
	// The ICMPv6 checksum covers a pseudo-header.
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	add(src[:])
	add(dst[:])
	sum += uint32(len(icmp)) + 58
	add(icmp)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(icmp[2:], ^uint16(sum))

	f := []byte{0x33, 0x33, 0, 0, 0, 1}
	f = append(f, routerMAC...)
	f = append(f, 0x86, 0xdd)
	f = append(f, 0x60, 0, 0, 0, byte(len(icmp)>>8), byte(len(icmp)), 58, 255)
	f = append(f, src[:]...)
	f = append(f, dst[:]...)
	return append(f, icmp...)
}

// TestSLAAC: with SLAAC on, a router advertisement gives the stack an
// address in the advertised prefix; without it, it does not.
func TestSLAAC(t *testing.T) {
	prefix := netip.MustParsePrefix("2001:db8:5a::/64")
	for _, on := range []bool{true, false} {
		a, _ := pair(t, Ethernet, Config{Addrs: addrA[:1], SLAAC: on}, Config{Addrs: addrB})
		a.DeliverFrames([][]byte{routerAdvertisement(prefix)})
		got := func() bool {
			for _, p := range a.Addrs() {
				if prefix.Contains(p.Addr()) {
					return true
				}
			}
			return false
		}
		deadline := time.Now().Add(3 * time.Second)
		for on && !got() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !on {
			time.Sleep(200 * time.Millisecond)
		}
		if got() != on {
			t.Fatalf("SLAAC %v: addresses %v", on, a.Addrs())
		}
	}
}
