package stack

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Send segmentation (GSO). The link endpoint offers gVisor "host" GSO: TCP
// hands over one segment of up to gsoMaxSize bytes with its checksum left
// partial, and the endpoint cuts it into MSS-sized frames itself, straight
// into the frames it gives the tunnel. gVisor would otherwise build a
// packet buffer per MSS (headers, references, a route and queue pass
// each), which was most of the cost of sending. Each frame's lengths, IPv4
// ID and header checksum, TCP sequence number, flags and checksum are
// set here, as a NIC doing TSO would.

// gsoMaxSize bounds one large segment so its IP length fields never
// overflow: gVisor sends up to this minus TCP's largest header.
const gsoMaxSize = 65000

// appendPacket appends n bytes of pkt, from offset off counted from its
// first header byte, to dst. It walks the packet's views without the
// allocation AsSlices makes.
func appendPacket(dst []byte, pkt *gvstack.PacketBuffer, off, n int) []byte {
	vl, hoff := pkt.AsViewList()
	skip := hoff + off
	for v := vl.Front(); v != nil && n > 0; v = v.Next() {
		s := v.AsSlice()
		if skip >= len(s) {
			skip -= len(s)
			continue
		}
		s = s[skip:]
		skip = 0
		if len(s) > n {
			s = s[:n]
		}
		dst = append(dst, s...)
		n -= len(s)
	}
	return dst
}

// segmentTCP appends the frames of one TCP packet whose checksum is
// partial (and which may exceed the MTU) to b: one frame per MSS of
// payload, each complete and with correct checksums.
func (b *frameBatch) segmentTCP(pkt *gvstack.PacketBuffer) {
	linkLen := len(pkt.LinkHeader().Slice())
	netLen := len(pkt.NetworkHeader().Slice())
	tcpLen := len(pkt.TransportHeader().Slice())
	hdrLen := linkLen + netLen + tcpLen
	payload := pkt.Data().Size()
	mss := int(pkt.GSOOptions.MSS)
	if mss <= 0 || payload <= mss {
		mss = max(payload, 1)
	}
	v6 := pkt.NetworkProtocolNumber == header.IPv6ProtocolNumber
	for off := 0; off == 0 || off < payload; off += mss {
		n := min(mss, payload-off)
		buf := b.next()
		buf = appendPacket(buf, pkt, 0, hdrLen)
		buf = appendPacket(buf, pkt, hdrLen+off, n)
		ip := buf[linkLen:]
		seg := ip[netLen:]
		var pseudo uint16
		if v6 {
			binary.BigEndian.PutUint16(ip[4:], uint16(tcpLen+n))
			pseudo = checksum.Checksum(ip[8:40], uint16(header.TCPProtocolNumber))
		} else {
			h := header.IPv4(ip)
			h.SetTotalLength(uint16(netLen + tcpLen + n))
			if off > 0 {
				h.SetID(h.ID() + uint16(off/mss))
			}
			if netLen == header.IPv4MinimumSize {
				setIPv4Checksum(ip)
			} else {
				h.SetChecksum(0)
				h.SetChecksum(^h.CalculateChecksum())
			}
			pseudo = checksum.Checksum(ip[12:20], uint16(header.TCPProtocolNumber))
		}
		t := header.TCP(seg)
		t.SetSequenceNumber(t.SequenceNumber() + uint32(off))
		flags := t.Flags()
		if off+n < payload {
			flags &^= header.TCPFlagFin | header.TCPFlagPsh // only the last frame ends or pushes
		}
		if off > 0 {
			flags &^= header.TCPFlagCwr // only the first frame signals
		}
		t.SetFlags(uint8(flags))
		t.SetChecksum(0)
		sum := checksum.Combine(pseudo, uint16(tcpLen+n))
		sum = checksum.Checksum(seg[:tcpLen], sum)
		sum = checksum.Checksum(seg[tcpLen:], sum)
		t.SetChecksum(^sum)
		b.add(buf)
	}
}
