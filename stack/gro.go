package stack

import (
	"encoding/binary"
	"math/bits"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Receive coalescing (GRO). A batch from the outer socket holds, during a
// transfer, dozens of in-order segments of one TCP flow back to back;
// gVisor's cost is per segment (buffers, references, a TCP segment, an
// ACK decision), not per byte. Adjacent segments that continue each other
// are merged into one large segment before the stack sees them, as Linux's
// GRO does: same addresses and ports, same IP header fields that matter,
// same TCP header but for sequence number and PSH, and contiguous
// sequence numbers. Only the frames of one batch are merged: nothing
// waits for a timer, so latency is untouched.
//
// Checksums are not verified here: the stack verifies the merged segment,
// one pass over the data as for any segment. The merged checksum is
// derived from the checksums the parts arrived with (RFC 1624 arithmetic:
// each part's claimed payload sum is its checksum less its pseudo-header
// and header), never from the data itself, so a part that arrived damaged
// makes the merged segment fail that check instead of being laundered into
// a valid one. IPv4 header checksums are checked here, as the merged
// header gets a new one.

const (
	maxMergedFrame  = 65535 // an IPv4 total length; one buffer chunk
	tcpFlagsMergeOK = header.TCPFlagAck | header.TCPFlagPsh
)

// segment describes one frame that may be merged: where its parts are and
// the sums needed to check and combine checksums. Only option-less IPv4
// headers and IPv6 headers without extensions are merged.
type segment struct {
	frame   []byte
	ip      int // offset of the IP header
	tcp     int // offset of the TCP header
	payload int // offset of the payload
	v6      bool
	seq     uint32
	psh     bool
	paySum  uint16 // the payload's ones' complement sum, as its checksum claims
}

func (s *segment) payloadLen() int { return len(s.frame) - s.payload }

// parseSegment reports whether frame is a TCP data segment that may be
// merged, and describes it. Anything else (other protocols, IP options,
// fragments, SYN/FIN/RST/URG/ECN flags, no payload, padding, a bad IPv4
// header checksum) is not, and goes to the stack unchanged.
func parseSegment(frame []byte, ethernet bool, s *segment) bool {
	ip := 0
	if ethernet {
		if len(frame) < header.EthernetMinimumSize {
			return false
		}
		ip = header.EthernetMinimumSize
		switch binary.BigEndian.Uint16(frame[12:14]) {
		case uint16(header.IPv4ProtocolNumber), uint16(header.IPv6ProtocolNumber):
		default:
			return false
		}
	}
	if len(frame) > maxMergedFrame || len(frame)-ip < header.IPv4MinimumSize {
		return false
	}
	p := frame[ip:]
	var pseudo uint16
	var tcpOff int
	switch p[0] >> 4 {
	case 4:
		h := header.IPv4(p)
		if p[0]&0x0f != 5 || int(h.TotalLength()) != len(p) || h.Protocol() != uint8(header.TCPProtocolNumber) ||
			h.More() || h.FragmentOffset() != 0 || ipv4HeaderSum(p) != 0xffff {
			return false
		}
		tcpOff = header.IPv4MinimumSize
		pseudo = checksum.Checksum(p[12:20], uint16(header.TCPProtocolNumber))
		s.v6 = false
	case 6:
		if len(p) < header.IPv6MinimumSize {
			return false
		}
		h := header.IPv6(p)
		if int(h.PayloadLength())+header.IPv6MinimumSize != len(p) || h.NextHeader() != uint8(header.TCPProtocolNumber) {
			return false
		}
		tcpOff = header.IPv6MinimumSize
		pseudo = checksum.Checksum(p[8:40], uint16(header.TCPProtocolNumber))
		s.v6 = true
	default:
		return false
	}
	seg := p[tcpOff:]
	if len(seg) < header.TCPMinimumSize {
		return false
	}
	t := header.TCP(seg)
	hlen := int(t.DataOffset())
	if hlen < header.TCPMinimumSize || hlen >= len(seg) {
		return false // malformed, or no payload
	}
	if t.Flags()&^tcpFlagsMergeOK != 0 || t.Flags()&header.TCPFlagAck == 0 {
		return false
	}
	s.frame, s.ip, s.tcp, s.payload = frame, ip, ip+tcpOff, ip+tcpOff+hlen
	s.seq = t.SequenceNumber()
	s.psh = t.Flags()&header.TCPFlagPsh != 0
	// checksum = ^(pseudo + length + header + payload), the header's
	// checksum field counting as zero: so the claimed payload sum is
	// ^checksum less the rest. The field itself sits in the header sum; a
	// field's own sum added to its complement's is zero (0xffff), so
	// counting it once more takes it out.
	field := t.Checksum()
	rest := checksum.Combine(pseudo, uint16(len(seg)))
	rest = checksum.Combine(rest, checksum.Checksum(seg[:hlen], 0))
	rest = checksum.Combine(rest, ^field) // the header sum without the field
	s.paySum = checksum.Combine(^field, ^rest)
	return true
}

// ipv4HeaderSum is the ones' complement sum of an option-less IPv4 header
// (0xffff when its checksum is right): a loop over ten words, which a
// general checksum call costs more than at this size.
func ipv4HeaderSum(h []byte) uint16 {
	_ = h[19]
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	sum = sum>>16 + sum&0xffff
	sum += sum >> 16
	return uint16(sum)
}

// setIPv4Checksum sets an option-less IPv4 header's checksum.
func setIPv4Checksum(h []byte) {
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:], ^ipv4HeaderSum(h))
}

// continues reports whether n carries on where the run headed by h, with
// runLen payload bytes so far, left off: same flow and headers, next
// sequence number, and room left in one frame.
func continues(h, n *segment, runLen int) bool {
	if h.v6 != n.v6 || h.payload != n.payload || h.psh ||
		h.seq+uint32(runLen) != n.seq || len(h.frame)+runLen+n.payloadLen()-h.payloadLen() > maxMergedFrame {
		return false
	}
	a, b := h.frame, n.frame
	// The Ethernet header, whole.
	if h.ip > 0 && string(a[:h.ip]) != string(b[:h.ip]) {
		return false
	}
	ip := h.ip
	if h.v6 {
		// Version, traffic class, flow label; hop limit; addresses.
		if string(a[ip:ip+4]) != string(b[ip:ip+4]) || a[ip+7] != b[ip+7] || string(a[ip+8:ip+40]) != string(b[ip+8:ip+40]) {
			return false
		}
	} else {
		// TOS; DF; TTL and protocol; addresses.
		if a[ip+1] != b[ip+1] || a[ip+6]&0x40 != b[ip+6]&0x40 || string(a[ip+8:ip+10]) != string(b[ip+8:ip+10]) ||
			string(a[ip+12:ip+20]) != string(b[ip+12:ip+20]) {
			return false
		}
	}
	// TCP: ports; acknowledgement; data offset, flags but PSH, window;
	// options (timestamps too: a receiver must see one TSval per merge).
	t := h.tcp
	return string(a[t:t+4]) == string(b[t:t+4]) &&
		string(a[t+8:t+12]) == string(b[t+8:t+12]) &&
		a[t+12] == b[t+12] && a[t+13]&^uint8(header.TCPFlagPsh) == b[t+13]&^uint8(header.TCPFlagPsh) &&
		string(a[t+14:t+16]) == string(b[t+14:t+16]) &&
		string(a[t+20:h.payload]) == string(b[t+20:n.payload])
}

// mergeInto writes the run segs (len ≥ 2) as one segment: the first
// frame's headers, with lengths, PSH and checksums fixed, into hdr
// (segs[0].payload bytes), and every payload after the other into pay
// (the run's payload bytes). hdr and pay may be the two halves of one
// buffer, which then holds the merged frame.
func mergeInto(hdr, pay []byte, segs []segment) {
	h := &segs[0]
	copy(hdr, h.frame[:h.payload])
	n := 0
	paySum := h.paySum
	psh := h.psh
	for i := range segs {
		s := &segs[i]
		if i > 0 {
			sum := s.paySum
			if n%2 == 1 {
				sum = bits.ReverseBytes16(sum) // starts at an odd offset
			}
			paySum = checksum.Combine(paySum, sum)
			psh = psh || s.psh
		}
		n += copy(pay[n:], s.frame[s.payload:])
	}
	ip := hdr[h.ip:]
	tcpLen := len(hdr) - h.tcp + n
	var pseudo uint16
	if h.v6 {
		header.IPv6(ip).SetPayloadLength(uint16(tcpLen))
		pseudo = checksum.Checksum(ip[8:40], uint16(header.TCPProtocolNumber))
	} else {
		header.IPv4(ip).SetTotalLength(uint16(len(ip) + n))
		setIPv4Checksum(ip)
		pseudo = checksum.Checksum(ip[12:20], uint16(header.TCPProtocolNumber))
	}
	t := header.TCP(hdr[h.tcp:])
	if psh {
		t.SetFlags(uint8(t.Flags() | header.TCPFlagPsh))
	}
	t.SetChecksum(0)
	sum := checksum.Combine(pseudo, uint16(tcpLen))
	sum = checksum.Combine(sum, checksum.Checksum(t, 0))
	t.SetChecksum(^checksum.Combine(sum, paySum))
}
