package gateway

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

const (
	ipv6HeaderLen   = 40
	udpHeaderLen    = 8
	fragHeaderLen   = 8
	protoUDP        = 17
	protoFragment   = 44
	minIPv6LinkMTU  = 1280
	defaultHopLimit = 64
)

var (
	errNotUDP   = errors.New("not UDP")
	errFragment = errors.New("IPv6 fragment")
	errShort    = errors.New("truncated packet")
)

// parseIPv6UDP returns the addresses and UDP payload of an IPv6 UDP packet
// read from the TUN. Fragments are reported, not reassembled: endpoints
// keep their packets within the path MTU, so they do not send them.
func parseIPv6UDP(p []byte) (src, dst netip.AddrPort, payload []byte, err error) {
	if len(p) < ipv6HeaderLen || p[0]>>4 != 6 {
		return src, dst, nil, errShort
	}
	switch p[6] {
	case protoUDP:
	case protoFragment:
		return src, dst, nil, errFragment
	default:
		return src, dst, nil, errNotUDP // MLD reports and the like arrive too
	}
	plen := int(binary.BigEndian.Uint16(p[4:6]))
	if ipv6HeaderLen+plen > len(p) || plen < udpHeaderLen {
		return src, dst, nil, errShort
	}
	u := p[ipv6HeaderLen : ipv6HeaderLen+plen]
	ulen := int(binary.BigEndian.Uint16(u[4:6]))
	if ulen < udpHeaderLen || ulen > len(u) {
		return src, dst, nil, errShort
	}
	s := netip.AddrFrom16([16]byte(p[8:24]))
	d := netip.AddrFrom16([16]byte(p[24:40]))
	return netip.AddrPortFrom(s, binary.BigEndian.Uint16(u[0:2])), netip.AddrPortFrom(d, binary.BigEndian.Uint16(u[2:4])), u[udpHeaderLen:ulen], nil
}

// appendIPv6UDP appends an IPv6 UDP packet to dst, with its checksum.
func appendIPv6UDP(dst []byte, src, to netip.AddrPort, payload []byte) []byte {
	start := len(dst)
	dst = appendIPv6UDPHeader(dst, src, to, defaultHopLimit, len(payload))
	dst = append(dst, payload...)
	u := start + ipv6HeaderLen
	sum := udpChecksum(dst[start+8:start+24], dst[start+24:start+40], dst[u:])
	binary.BigEndian.PutUint16(dst[u+6:], sum)
	return dst
}

// appendIPv6UDPHeader appends the IPv6 and UDP headers of a packet carrying
// n bytes of payload, its UDP checksum field zero.
func appendIPv6UDPHeader(dst []byte, src, to netip.AddrPort, hop uint8, n int) []byte {
	ulen := udpHeaderLen + n
	dst = append(dst, 0x60, 0, 0, 0, byte(ulen>>8), byte(ulen), protoUDP, hop)
	s, d := src.Addr().As16(), to.Addr().As16()
	dst = append(dst, s[:]...)
	dst = append(dst, d[:]...)
	dst = binary.BigEndian.AppendUint16(dst, src.Port())
	dst = binary.BigEndian.AppendUint16(dst, to.Port())
	dst = binary.BigEndian.AppendUint16(dst, uint16(ulen))
	return append(dst, 0, 0)
}

// udpChecksum computes the IPv6 UDP checksum over the pseudo-header and the
// datagram (whose checksum field is zero). A result of 0 is sent as 0xffff:
// zero means "no checksum", which IPv6 forbids.
func udpChecksum(src, dst, udp []byte) uint16 {
	c := ^fold(onesSum(pseudoSum(src, dst, len(udp)), udp))
	if c == 0 {
		c = 0xffff
	}
	return c
}

// pseudoSum is the ones'-complement sum of the IPv6 pseudo-header of a UDP
// datagram of ulen bytes, unfolded.
func pseudoSum(src, dst []byte, ulen int) uint64 {
	return onesSum(onesSum(0, src), dst) + uint64(ulen) + protoUDP
}

// fold folds a 64-bit ones'-complement sum to 16 bits.
func fold(sum uint64) uint16 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// onesSum adds b to a ones'-complement sum as big-endian 16-bit words,
// 32 bits at a time into 64 (carries accumulate above bit 32 and are
// folded at the end): the checksum is the gateway's largest cost of its
// own per packet, a quarter of the 16-bit loop's.
func onesSum(sum uint64, b []byte) uint64 {
	for len(b) >= 8 {
		sum += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	if len(b) >= 4 {
		sum += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

// fragment splits an IPv6 packet larger than mtu into fragments (RFC 8200
// section 4.5), calling emit for each. A packet that fits is emitted as is.
// 6→4 translation grows packets by 20 bytes, so an IPv4 packet that filled
// its path arrives too big for the site's link.
func fragment(pkt []byte, mtu int, id uint32, scratch []byte, emit func([]byte) error) error {
	if len(pkt) <= mtu {
		return emit(pkt)
	}
	nextHeader := pkt[6]
	body := pkt[ipv6HeaderLen:]
	// Each fragment's data but the last is a multiple of 8 bytes.
	per := (mtu - ipv6HeaderLen - fragHeaderLen) &^ 7
	for off := 0; off < len(body); off += per {
		end := min(off+per, len(body))
		more := end < len(body)
		f := append(scratch[:0], pkt[:ipv6HeaderLen]...)
		binary.BigEndian.PutUint16(f[4:6], uint16(fragHeaderLen+end-off))
		f[6] = protoFragment
		fo := uint16(off/8) << 3
		if more {
			fo |= 1
		}
		f = append(f, nextHeader, 0, byte(fo>>8), byte(fo))
		f = binary.BigEndian.AppendUint32(f, id)
		f = append(f, body[off:end]...)
		if err := emit(f); err != nil {
			return err
		}
	}
	return nil
}
