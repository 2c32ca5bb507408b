package stack

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net/netip"
	"slices"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// segSpec describes a TCP segment for buildSegment.
type segSpec struct {
	ethernet bool
	v6       bool
	seq, ack uint32
	flags    header.TCPFlags
	window   uint16
	tsval    uint32 // 0: no options
	payload  []byte
	ttl      uint8
}

var (
	groSrc4, groDst4 = netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.1.0.2")
	groSrc6, groDst6 = netip.MustParseAddr("fd01::1"), netip.MustParseAddr("fd01::2")
)

// buildSegment encodes a frame with correct lengths and checksums, the
// way a real sender would, with gVisor's own header encoders.
func buildSegment(s segSpec) []byte {
	tcpLen := header.TCPMinimumSize
	if s.tsval != 0 {
		tcpLen += 12
	}
	ipLen := header.IPv4MinimumSize
	src, dst := groSrc4, groDst4
	proto := header.IPv4ProtocolNumber
	if s.v6 {
		ipLen, src, dst, proto = header.IPv6MinimumSize, groSrc6, groDst6, header.IPv6ProtocolNumber
	}
	ethLen := 0
	if s.ethernet {
		ethLen = header.EthernetMinimumSize
	}
	if s.ttl == 0 {
		s.ttl = 64
	}
	f := make([]byte, ethLen+ipLen+tcpLen+len(s.payload))
	if s.ethernet {
		header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: "\x02\x00\x00\x00\x00\x01", DstAddr: "\x02\x00\x00\x00\x00\x02", Type: proto})
	}
	ip := f[ethLen:]
	srcA, dstA := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(dst.AsSlice())
	if s.v6 {
		header.IPv6(ip).Encode(&header.IPv6Fields{PayloadLength: uint16(tcpLen + len(s.payload)), TransportProtocol: header.TCPProtocolNumber,
			HopLimit: s.ttl, SrcAddr: srcA, DstAddr: dstA})
	} else {
		h := header.IPv4(ip)
		h.Encode(&header.IPv4Fields{TotalLength: uint16(len(ip)), Flags: header.IPv4FlagDontFragment, TTL: s.ttl,
			Protocol: uint8(header.TCPProtocolNumber), SrcAddr: srcA, DstAddr: dstA, ID: uint16(s.seq)})
		h.SetChecksum(^h.CalculateChecksum())
	}
	t := header.TCP(ip[ipLen:])
	t.Encode(&header.TCPFields{SrcPort: 40000, DstPort: 80, SeqNum: s.seq, AckNum: s.ack,
		DataOffset: uint8(tcpLen), Flags: s.flags, WindowSize: s.window})
	if s.tsval != 0 { // NOP, NOP, timestamps
		opts := t[header.TCPMinimumSize:tcpLen]
		copy(opts, []byte{1, 1, 8, 10})
		binary.BigEndian.PutUint32(opts[4:], s.tsval)
		binary.BigEndian.PutUint32(opts[8:], 7)
	}
	copy(t[tcpLen:], s.payload)
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, srcA, dstA, uint16(tcpLen+len(s.payload)))
	t.SetChecksum(^checksum.Checksum(t, sum))
	return f
}

// tcpFrameOK reports whether frame holds TCP and, if so, whether its IP
// lengths and IP and TCP checksums are right, all checked from scratch.
func tcpFrameOK(f []byte, ethernet bool) (isTCP, ok bool) {
	if ethernet {
		if len(f) < header.EthernetMinimumSize {
			return false, false
		}
		f = f[header.EthernetMinimumSize:]
	}
	var tcpBytes []byte
	var src, dst tcpip.Address
	switch {
	case len(f) >= header.IPv4MinimumSize && header.IPVersion(f) == 4:
		h := header.IPv4(f)
		if h.Protocol() != uint8(header.TCPProtocolNumber) {
			return false, false
		}
		if !h.IsChecksumValid() || int(h.TotalLength()) != len(f) || int(h.HeaderLength()) > len(f) {
			return true, false
		}
		tcpBytes, src, dst = f[h.HeaderLength():], h.SourceAddress(), h.DestinationAddress()
	case len(f) >= header.IPv6MinimumSize && header.IPVersion(f) == 6:
		h := header.IPv6(f)
		if h.NextHeader() != uint8(header.TCPProtocolNumber) {
			return false, false
		}
		if int(h.PayloadLength())+header.IPv6MinimumSize != len(f) {
			return true, false
		}
		tcpBytes, src, dst = f[header.IPv6MinimumSize:], h.SourceAddress(), h.DestinationAddress()
	default:
		return false, false
	}
	if len(tcpBytes) < header.TCPMinimumSize {
		return true, false
	}
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(tcpBytes)))
	return true, checksum.Checksum(tcpBytes, sum) == 0xffff
}

// checkFrame verifies a TCP frame from scratch and returns its TCP header
// and payload.
func checkFrame(t *testing.T, f []byte, ethernet bool) (header.TCP, []byte) {
	t.Helper()
	if isTCP, ok := tcpFrameOK(f, ethernet); !isTCP || !ok {
		t.Fatalf("not a valid TCP frame (TCP %v)", isTCP)
	}
	if ethernet {
		f = f[header.EthernetMinimumSize:]
	}
	off := header.IPv6MinimumSize
	if header.IPVersion(f) == 4 {
		off = int(header.IPv4(f).HeaderLength())
	}
	tcp := header.TCP(f[off:])
	return tcp, f[off+int(tcp.DataOffset()):]
}

func parseAll(t *testing.T, frames [][]byte, ethernet bool) []segment {
	t.Helper()
	segs := make([]segment, len(frames))
	for i, f := range frames {
		if !parseSegment(f, ethernet, &segs[i]) {
			t.Fatalf("segment %d not mergeable", i)
		}
	}
	return segs
}

// TestGROMerge: runs of in-order segments merge into one with correct
// lengths, flags and checksums, IPv4 and IPv6, Ethernet and IP, with odd
// payload lengths that shift later payloads by a byte.
func TestGROMerge(t *testing.T) {
	for _, ethernet := range []bool{false, true} {
		for _, v6 := range []bool{false, true} {
			var frames [][]byte
			var want []byte
			seq := uint32(0xfffffff0) // wraps inside the run
			for i, n := range []int{1001, 1400, 7, 1, 1400} {
				p := bytes.Repeat([]byte{byte(i + 1)}, n)
				p[0] = 0xa5
				flags := header.TCPFlagAck
				if i == 4 {
					flags |= header.TCPFlagPsh
				}
				frames = append(frames, buildSegment(segSpec{ethernet: ethernet, v6: v6, seq: seq, ack: 77, flags: flags, window: 500, tsval: 9, payload: p}))
				want = append(want, p...)
				seq += uint32(n)
			}
			segs := parseAll(t, frames, ethernet)
			for i := 1; i < len(segs); i++ {
				if !continues(&segs[0], &segs[i], int(segs[i].seq-segs[0].seq)) {
					t.Fatalf("eth %v v6 %v: segment %d does not continue the run", ethernet, v6, i)
				}
			}
			out := mergedFrame(segs)
			tcp, payload := checkFrame(t, out, ethernet)
			if !bytes.Equal(payload, want) {
				t.Fatalf("eth %v v6 %v: merged payload differs", ethernet, v6)
			}
			if tcp.SequenceNumber() != 0xfffffff0 || tcp.AckNumber() != 77 || tcp.Flags() != header.TCPFlagAck|header.TCPFlagPsh || tcp.WindowSize() != 500 {
				t.Fatalf("merged header: seq %x ack %d flags %v window %d", tcp.SequenceNumber(), tcp.AckNumber(), tcp.Flags(), tcp.WindowSize())
			}
		}
	}
}

// TestGRONoMerge: what must not merge, does not.
func TestGRONoMerge(t *testing.T) {
	base := segSpec{seq: 1000, ack: 5, flags: header.TCPFlagAck, window: 100, tsval: 3, payload: make([]byte, 100)}
	head := buildSegment(base)
	cases := []struct {
		name string
		mod  func(*segSpec)
	}{
		{"gap", func(s *segSpec) { s.seq = 1101 }},
		{"overlap", func(s *segSpec) { s.seq = 1050 }},
		{"other ack", func(s *segSpec) { s.ack = 6 }},
		{"other window", func(s *segSpec) { s.window = 99 }},
		{"other timestamp", func(s *segSpec) { s.tsval = 4 }},
		{"no options", func(s *segSpec) { s.tsval = 0 }},
		{"other TTL", func(s *segSpec) { s.ttl = 3 }},
		{"other family", func(s *segSpec) { s.v6 = true }},
	}
	var h segment
	if !parseSegment(head, false, &h) {
		t.Fatal("head not mergeable")
	}
	for _, c := range cases {
		s := base
		s.seq = 1100
		c.mod(&s)
		var n segment
		if parseSegment(buildSegment(s), false, &n) && continues(&h, &n, 100) {
			t.Errorf("%s: merged", c.name)
		}
	}
	// After PSH, a run ends.
	psh := base
	psh.flags |= header.TCPFlagPsh
	var p, n segment
	next := base
	next.seq = 1100
	if !parseSegment(buildSegment(psh), false, &p) || !parseSegment(buildSegment(next), false, &n) || continues(&p, &n, 100) {
		t.Error("a segment merged after PSH")
	}
	// Not candidates at all: control flags, no payload, a bad IPv4 header
	// checksum, truncation, fragments, padding.
	not := map[string][]byte{}
	for name, fl := range map[string]header.TCPFlags{"SYN": header.TCPFlagSyn, "FIN": header.TCPFlagFin, "RST": header.TCPFlagRst, "URG": header.TCPFlagUrg, "CWR": header.TCPFlagCwr, "no ACK": 0} {
		s := base
		s.flags = fl | header.TCPFlagAck
		if name == "no ACK" {
			s.flags = 0
		}
		not[name] = buildSegment(s)
	}
	empty := base
	empty.payload = nil
	not["no payload"] = buildSegment(empty)
	badIP := bytes.Clone(head)
	badIP[8]-- // TTL, without fixing the header checksum
	not["bad IP checksum"] = badIP
	not["truncated"] = head[:len(head)-1]
	frag := bytes.Clone(head)
	binary.BigEndian.PutUint16(frag[6:], 0x2000) // MF
	h4 := header.IPv4(frag)
	h4.SetChecksum(0)
	h4.SetChecksum(^h4.CalculateChecksum())
	not["fragment"] = frag
	padded := append(bytes.Clone(head), 0, 0)
	not["padded"] = padded
	for name, f := range not {
		var s segment
		if parseSegment(f, false, &s) {
			t.Errorf("%s: taken for merging", name)
		}
	}
}

// TestGROKeepsDamage: a part that arrived damaged (payload or checksum)
// makes the merged segment fail its checksum: merging never turns bad data
// into a valid segment.
func TestGROKeepsDamage(t *testing.T) {
	for _, damage := range []struct {
		name string
		at   func(f []byte) int // offset of the byte to flip
	}{
		{"payload", func(f []byte) int { return len(f) - 5 }},
		{"checksum field", func(f []byte) int { return header.IPv4MinimumSize + 16 }},
	} {
		var frames [][]byte
		for i := 0; i < 3; i++ {
			frames = append(frames, buildSegment(segSpec{seq: uint32(i * 333), ack: 1, flags: header.TCPFlagAck, window: 9, payload: bytes.Repeat([]byte{byte(i + 7)}, 333)}))
		}
		frames[1][damage.at(frames[1])] ^= 0x10
		segs := parseAll(t, frames, false)
		out := mergedFrame(segs)
		if isTCP, ok := tcpFrameOK(out, false); !isTCP || ok {
			t.Fatalf("%s damaged: the merged segment's checksum passes", damage.name)
		}
	}
}

// TestSegmentationAndCoalescing: a transfer between two stacks whose links
// deliver batches arrives intact; every frame on the wire fits the MTU and
// has correct lengths and checksums (segmentation, gso.go); segments were
// merged on the way in (gro.go).
func TestSegmentationAndCoalescing(t *testing.T) {
	for _, payload := range []Payload{Ethernet, IP} {
		a, b, la, lb := pairLinks(t, payload, Config{Addrs: addrA}, Config{Addrs: addrB})
		ln, err := b.Listen("tcp", "10.42.0.1:9000")
		if err != nil {
			t.Fatal(err)
		}
		const n = 8 << 20
		got := make(chan [32]byte, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- [32]byte{}
				return
			}
			h := sha256.New()
			io.Copy(h, c)
			c.Close()
			got <- [32]byte(h.Sum(nil))
		}()
		c, err := a.DialContext(ctx(t), "tcp", "10.42.0.1:9000")
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*7 + i>>11)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write(data); err != nil {
			t.Fatalf("%v (frames over the MTU %d, bad TCP segments %d)", err, la.oversize.Load(), la.badTCP.Load())
		}
		c.Close()
		select {
		case sum := <-got:
			if sum != sha256.Sum256(data) {
				t.Fatal("data arrived changed")
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("transfer stalled (frames over the MTU %d, bad TCP segments %d)", la.oversize.Load(), la.badTCP.Load())
		}
		ln.Close()
		if b.Stats().SegmentsMerged == 0 {
			t.Fatal("no segment was merged")
		}
		for name, l := range map[string]*pipeLink{"a": la, "b": lb} {
			if l.oversize.Load() != 0 || l.badTCP.Load() != 0 {
				t.Fatalf("%s sent %d frames over the MTU and %d bad TCP segments", name, l.oversize.Load(), l.badTCP.Load())
			}
		}
		t.Logf("%s payloads: %d segments arrived merged", map[Payload]string{Ethernet: "Ethernet", IP: "IP"}[payload], b.Stats().SegmentsMerged)
	}
}

// TestGROAllocs: parsing and merging allocate nothing.
func TestGROAllocs(t *testing.T) {
	var frames [][]byte
	for i := 0; i < 8; i++ {
		frames = append(frames, buildSegment(segSpec{seq: uint32(i * 1000), ack: 1, flags: header.TCPFlagAck, window: 9, payload: make([]byte, 1000)}))
	}
	segs := make([]segment, len(frames))
	hdr, pay := make([]byte, 100), make([]byte, 65535)
	allocs := testing.AllocsPerRun(100, func() {
		for i, f := range frames {
			parseSegment(f, false, &segs[i])
		}
		mergeInto(hdr[:segs[0].payload], pay, segs)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per merge", allocs)
	}
}

// FuzzGRO: any bytes, taken as frames of one batch: parsing never panics;
// two valid segments merge into a valid one whose payload is theirs in
// order, and a valid and a damaged one never merge into a valid one.
func FuzzGRO(f *testing.F) {
	seg := func(seq uint32, n int, v6 bool) []byte {
		return buildSegment(segSpec{v6: v6, seq: seq, ack: 1, flags: header.TCPFlagAck, window: 9, tsval: 1, payload: bytes.Repeat([]byte{byte(n)}, n)})
	}
	f.Add(seg(0, 11, false), seg(11, 20, false), false)
	f.Add(seg(0, 3, true), seg(3, 1, true), false)
	f.Add([]byte{0x45}, []byte{}, true)
	f.Fuzz(func(t *testing.T, a, b []byte, ethernet bool) {
		if at := payloadOffset(a, ethernet); at < 0 || at >= max(len(a), 1) {
			t.Fatalf("payload offset %d in %d bytes", at, len(a))
		}
		var sa, sb segment
		okA, okB := parseSegment(a, ethernet, &sa), parseSegment(b, ethernet, &sb)
		if !okA || !okB || !continues(&sa, &sb, sa.payloadLen()) {
			return
		}
		_, validA := tcpFrameOK(a, ethernet)
		_, validB := tcpFrameOK(b, ethernet)
		segs := []segment{sa, sb}
		out := mergedFrame(segs)
		_, valid := tcpFrameOK(out, ethernet)
		switch {
		case validA && validB && !valid:
			t.Fatal("two valid segments merged into an invalid one")
		case validA != validB && valid:
			t.Fatal("a damaged segment merged into a valid one")
		}
		if validA && validB {
			if _, payload := checkFrame(t, out, ethernet); !bytes.Equal(payload, append(bytes.Clone(a[sa.payload:]), b[sb.payload:]...)) {
				t.Fatal("merged payload differs")
			}
		}
	})
}

// TestPayloadOffset: received frames are split where their TCP or UDP
// payload starts (link.go's splitBuffer), and anything else, payloads
// that are empty included, is left whole.
func TestPayloadOffset(t *testing.T) {
	for _, ethernet := range []bool{false, true} {
		eth := 0
		if ethernet {
			eth = header.EthernetMinimumSize
		}
		for _, v6 := range []bool{false, true} {
			ip := header.IPv4MinimumSize
			if v6 {
				ip = header.IPv6MinimumSize
			}
			data := buildSegment(segSpec{ethernet: ethernet, v6: v6, seq: 1, ack: 1, flags: header.TCPFlagAck, tsval: 5, payload: []byte("data")})
			if got, want := payloadOffset(data, ethernet), eth+ip+header.TCPMinimumSize+12; got != want {
				t.Errorf("eth %v v6 %v: TCP payload at %d, want %d", ethernet, v6, got, want)
			}
			ack := buildSegment(segSpec{ethernet: ethernet, v6: v6, seq: 1, ack: 1, flags: header.TCPFlagAck})
			if got := payloadOffset(ack, ethernet); got != 0 {
				t.Errorf("eth %v v6 %v: a bare ACK split at %d", ethernet, v6, got)
			}
			udp := slices.Clone(data)
			if v6 {
				udp[eth+6] = uint8(header.UDPProtocolNumber)
			} else {
				udp[eth+9] = uint8(header.UDPProtocolNumber)
			}
			if got, want := payloadOffset(udp, ethernet), eth+ip+header.UDPMinimumSize; got != want {
				t.Errorf("eth %v v6 %v: UDP payload at %d, want %d", ethernet, v6, got, want)
			}
			icmp := slices.Clone(data)
			if v6 {
				icmp[eth+6] = uint8(header.ICMPv6ProtocolNumber)
			} else {
				icmp[eth+9] = uint8(header.ICMPv4ProtocolNumber)
			}
			if got := payloadOffset(icmp, ethernet); got != 0 {
				t.Errorf("eth %v v6 %v: ICMP split at %d", ethernet, v6, got)
			}
		}
	}
}

// mergedFrame merges the run segs into one contiguous frame: headers and
// payload as the two halves of one buffer.
func mergedFrame(segs []segment) []byte {
	n := segs[0].payload
	for i := range segs {
		n += segs[i].payloadLen()
	}
	out := make([]byte, n)
	mergeInto(out[:segs[0].payload], out[segs[0].payload:], segs)
	return out
}

// isSYN reports whether f is a TCP connection request (SYN without ACK)
// over IPv4 or IPv6 without extension headers.
func isSYN(f []byte, ethernet bool) bool {
	if ethernet {
		if len(f) < header.EthernetMinimumSize {
			return false
		}
		f = f[header.EthernetMinimumSize:]
	}
	var t []byte
	switch {
	case len(f) >= header.IPv4MinimumSize && header.IPVersion(f) == 4 && header.IPv4(f).Protocol() == uint8(header.TCPProtocolNumber):
		t = f[header.IPv4(f).HeaderLength():]
	case len(f) >= header.IPv6MinimumSize && header.IPVersion(f) == 6 && header.IPv6(f).NextHeader() == uint8(header.TCPProtocolNumber):
		t = f[header.IPv6MinimumSize:]
	}
	return len(t) >= header.TCPMinimumSize && header.TCP(t).Flags() == header.TCPFlagSyn
}
