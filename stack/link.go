package stack

import (
	"sync"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Link is the tunnel side of the stack: where outgoing frames go. The
// tunnel endpoint implements it; so can a test.
type Link interface {
	// SendFrames sends a batch of frames (Ethernet or IP, per the
	// stack's Payload). The frames may be reused once it returns.
	SendFrames(frames [][]byte) (int, error)
}

// linkEndpoint is the gVisor link endpoint between the stack and a Link.
// Outgoing packets are flattened into pooled buffers and handed over as one
// batch per WritePackets call; incoming frames are delivered synchronously
// on the tunnel's receive goroutine, with no channel or goroutine per packet.
type linkEndpoint struct {
	link     Link
	ethernet bool
	mac      tcpip.LinkAddress

	mu         sync.RWMutex
	mtu        uint32
	dispatcher gvstack.NetworkDispatcher
	onClose    func()

	runs sync.Pool // *groRun
	out  *sender
	acks *ackDelayer

	// merged counts TCP segments received merged with others (gro.go).
	merged Counter

	// Stats, updated atomically by the caller's goroutines.
	rxOther Counter // Ethernet frames for another MAC: not ours to take
	rxBad   Counter // frames too short or of an unknown type
}

type frameBatch struct {
	frames [][]byte
	bufs   [][]byte
}

func newLinkEndpoint(link Link, mtu uint32, ethernet bool, mac tcpip.LinkAddress) *linkEndpoint {
	e := &linkEndpoint{link: link, mtu: mtu, ethernet: ethernet, mac: mac}
	e.runs.New = func() any { return &groRun{} }
	e.out = newSender(link)
	e.acks = newAckDelayer(e.out, ethernet, mtu)
	return e
}

// MTU implements stack.LinkEndpoint: the largest IP packet.
func (e *linkEndpoint) MTU() uint32 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.mtu
}

// SetMTU implements stack.LinkEndpoint.
func (e *linkEndpoint) SetMTU(mtu uint32) {
	e.mu.Lock()
	e.mtu = mtu
	e.mu.Unlock()
}

// MaxHeaderLength implements stack.LinkEndpoint.
func (e *linkEndpoint) MaxHeaderLength() uint16 {
	if e.ethernet {
		return header.EthernetMinimumSize
	}
	return 0
}

// LinkAddress implements stack.LinkEndpoint.
func (e *linkEndpoint) LinkAddress() tcpip.LinkAddress { return e.mac }

// SetLinkAddress implements stack.LinkEndpoint; the MAC is fixed.
func (e *linkEndpoint) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities implements stack.LinkEndpoint.
func (e *linkEndpoint) Capabilities() gvstack.LinkEndpointCapabilities {
	if e.ethernet {
		return gvstack.CapabilityResolutionRequired
	}
	return 0
}

// Attach implements stack.LinkEndpoint.
func (e *linkEndpoint) Attach(d gvstack.NetworkDispatcher) {
	e.mu.Lock()
	e.dispatcher = d
	e.mu.Unlock()
}

// IsAttached implements stack.LinkEndpoint.
func (e *linkEndpoint) IsAttached() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.dispatcher != nil
}

// Wait implements stack.LinkEndpoint: the sender's goroutine ends in Close.
func (e *linkEndpoint) Wait() {}

// ARPHardwareType implements stack.LinkEndpoint.
func (e *linkEndpoint) ARPHardwareType() header.ARPHardwareType {
	if e.ethernet {
		return header.ARPHardwareEther
	}
	return header.ARPHardwareNone
}

// AddHeader implements stack.LinkEndpoint.
func (e *linkEndpoint) AddHeader(pkt *gvstack.PacketBuffer) {
	if !e.ethernet {
		return
	}
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	src := pkt.EgressRoute.LocalLinkAddress
	if src == "" {
		src = e.mac
	}
	eth.Encode(&header.EthernetFields{SrcAddr: src, DstAddr: pkt.EgressRoute.RemoteLinkAddress, Type: pkt.NetworkProtocolNumber})
}

// ParseHeader implements stack.LinkEndpoint.
func (e *linkEndpoint) ParseHeader(pkt *gvstack.PacketBuffer) bool {
	if !e.ethernet {
		return true
	}
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// Close implements stack.LinkEndpoint.
func (e *linkEndpoint) Close() {
	e.acks.close()
	e.out.close()
	e.mu.Lock()
	f := e.onClose
	e.onClose = nil
	e.mu.Unlock()
	if f != nil {
		f()
	}
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *linkEndpoint) SetOnCloseAction(f func()) {
	e.mu.Lock()
	e.onClose = f
	e.mu.Unlock()
}

// WritePackets implements stack.LinkEndpoint: the whole list becomes one
// batch for the tunnel, large TCP segments cut into frames on the way
// (gso.go), sent on the caller's goroutine or queued behind a send under
// way (sender.go). The stack keeps its references to the packets.
func (e *linkEndpoint) WritePackets(pkts gvstack.PacketBufferList) (int, tcpip.Error) {
	b := e.out.get()
	for _, pkt := range pkts.AsSlice() {
		b.addPacket(pkt)
	}
	if err := e.send(b); err != nil {
		return 0, err
	}
	return pkts.Len(), nil
}

// writeOne is WritePackets for one packet, without a list.
func (e *linkEndpoint) writeOne(pkt *gvstack.PacketBuffer) tcpip.Error {
	b := e.out.get()
	b.addPacket(pkt)
	return e.send(b)
}

// send hands a batch, held ACKs taken out, to the sender.
func (e *linkEndpoint) send(b *frameBatch) tcpip.Error {
	if e.acks != nil {
		b.frames = e.acks.filter(b.frames)
	}
	if err := e.out.send(b); err != nil {
		return &tcpip.ErrClosedForSend{}
	}
	return nil
}

// addPacket adds pkt to the batch: one frame, or the frames a large TCP
// segment is cut into.
func (b *frameBatch) addPacket(pkt *gvstack.PacketBuffer) {
	if pkt.GSOOptions.Type != gvstack.GSONone && pkt.GSOOptions.NeedsCsum {
		b.segmentTCP(pkt)
		return
	}
	b.add(appendPacket(b.next(), pkt, 0, pkt.Size()))
}

// directQDisc is the NIC's queueing discipline: none. gVisor's stand-in
// for a NIC without one wraps every packet in a list of its own, an
// allocation per packet; this hands the packet straight to the endpoint,
// which batches as it can (sender.go).
type directQDisc struct{ e *linkEndpoint }

// WritePacket implements stack.QueueingDiscipline.
func (q directQDisc) WritePacket(pkt *gvstack.PacketBuffer) tcpip.Error { return q.e.writeOne(pkt) }

// Close implements stack.QueueingDiscipline: there is nothing queued.
func (directQDisc) Close() {}

// next returns an empty buffer for the batch's next frame, reused from an
// earlier batch when there is one.
func (b *frameBatch) next() []byte {
	i := len(b.frames)
	if i == len(b.bufs) {
		b.bufs = append(b.bufs, nil)
	}
	return b.bufs[i][:0]
}

// add appends buf, built from next(), as the batch's next frame.
func (b *frameBatch) add(buf []byte) {
	b.bufs[len(b.frames)] = buf
	b.frames = append(b.frames, buf)
}

// DeliverFrames hands frames from the tunnel to the stack. It is the
// tunnel's InnerLink: it runs on the tunnel's receive goroutine, and the
// frames are copied before it returns. Runs of adjacent TCP segments of one
// flow are merged first (gro.go).
func (e *linkEndpoint) DeliverFrames(frames [][]byte) {
	e.mu.RLock()
	d := e.dispatcher
	e.mu.RUnlock()
	if d == nil {
		return
	}
	g := e.runs.Get().(*groRun)
	for _, f := range frames {
		s := &g.next
		if !parseSegment(f, e.ethernet, s) {
			e.flushRun(d, g)
			e.deliver(d, f, payloadOffset(f, e.ethernet))
			continue
		}
		if len(g.segs) > 0 && continues(&g.segs[0], s, g.payload) {
			g.segs = append(g.segs, *s)
			g.payload += s.payloadLen()
			continue
		}
		e.flushRun(d, g)
		g.segs = append(g.segs, *s)
		g.payload = s.payloadLen()
	}
	e.flushRun(d, g)
	e.runs.Put(g)
}

// groRun is DeliverFrames' scratch space: the run of segments being merged.
type groRun struct {
	segs    []segment
	payload int // payload bytes in segs
	next    segment
}

// flushRun delivers the open run: one segment as it came, more as one
// merged segment.
func (e *linkEndpoint) flushRun(d gvstack.NetworkDispatcher, g *groRun) {
	switch len(g.segs) {
	case 0:
		return
	case 1:
		e.deliver(d, g.segs[0].frame, g.segs[0].payload)
	default:
		hdr := buffer.NewViewSize(g.segs[0].payload)
		pay := buffer.NewViewSize(g.payload)
		mergeInto(hdr.AsSlice(), pay.AsSlice(), g.segs)
		if proto, pktType, ok := e.classify(hdr.AsSlice()); ok {
			buf := buffer.MakeWithView(hdr)
			buf.Append(pay)
			e.inject(d, buf, proto, pktType)
			e.merged.Add(uint64(len(g.segs)))
		} else {
			hdr.Release()
			pay.Release()
		}
	}
	clear(g.segs)
	g.segs = g.segs[:0]
}

// deliver hands one frame to the stack, copied and split at its payload
// offset at (see splitBuffer), unless it is not ours.
func (e *linkEndpoint) deliver(d gvstack.NetworkDispatcher, f []byte, at int) {
	if proto, pktType, ok := e.classify(f); ok {
		e.inject(d, splitBuffer(f, at), proto, pktType)
	}
}

// splitBuffer copies frame f into a packet buffer of two chunks: the
// headers, f[:at], and the payload. gVisor's IP layer keeps a reference to
// the network header while it reads the header again, and a read of a
// chunk that is shared copies the whole chunk first: with the frame in one
// chunk, every packet was copied twice (a merged segment's 64 KiB
// included). Split, that second copy is of the headers alone. at ≤ 0
// keeps the frame in one chunk.
func splitBuffer(f []byte, at int) buffer.Buffer {
	if at <= 0 || at >= len(f) {
		return buffer.MakeWithData(f)
	}
	buf := buffer.MakeWithData(f[:at])
	buf.Append(buffer.NewViewWithData(f[at:]))
	return buf
}

// payloadOffset is where the TCP or UDP payload of frame f starts, or 0
// when f is something else (or has no payload) and needs no split.
func payloadOffset(f []byte, ethernet bool) int {
	ip := 0
	if ethernet {
		ip = header.EthernetMinimumSize
	}
	if len(f) < ip+header.IPv4MinimumSize {
		return 0
	}
	p := f[ip:]
	var proto uint8
	var l4 int
	switch p[0] >> 4 {
	case 4:
		proto, l4 = header.IPv4(p).Protocol(), int(p[0]&0x0f)*4
	case 6:
		if len(p) < header.IPv6MinimumSize {
			return 0
		}
		proto, l4 = header.IPv6(p).NextHeader(), header.IPv6MinimumSize
	default:
		return 0
	}
	switch {
	case proto == uint8(header.TCPProtocolNumber) && len(p) >= l4+header.TCPMinimumSize:
		l4 += int(header.TCP(p[l4:]).DataOffset())
	case proto == uint8(header.UDPProtocolNumber):
		l4 += header.UDPMinimumSize
	default:
		return 0
	}
	if l4 >= len(p) {
		return 0
	}
	return ip + l4
}

// classify finds a frame's network protocol and packet type, and counts
// and refuses frames that are not ours or not understood.
func (e *linkEndpoint) classify(f []byte) (tcpip.NetworkProtocolNumber, tcpip.PacketType, bool) {
	if !e.ethernet {
		if len(f) > 0 {
			switch header.IPVersion(f) {
			case header.IPv4Version:
				return header.IPv4ProtocolNumber, tcpip.PacketHost, true
			case header.IPv6Version:
				return header.IPv6ProtocolNumber, tcpip.PacketHost, true
			}
		}
		e.rxBad.Add(1)
		return 0, 0, false
	}
	if len(f) < header.EthernetMinimumSize {
		e.rxBad.Add(1)
		return 0, 0, false
	}
	eth := header.Ethernet(f)
	switch dst := eth.DestinationAddress(); {
	case dst == header.EthernetBroadcastAddress:
		return eth.Type(), tcpip.PacketBroadcast, true
	case header.IsMulticastEthernetAddress(dst):
		return eth.Type(), tcpip.PacketMulticast, true
	case dst != e.mac:
		// A server floods unknown unicast to every peer; frames for
		// another MAC are not ours, even though egress makes the stack
		// accept packets for any IP address.
		e.rxOther.Add(1)
		return 0, 0, false
	}
	return eth.Type(), tcpip.PacketHost, true
}

// inject hands a classified frame, in buf (which it consumes), to the stack.
func (e *linkEndpoint) inject(d gvstack.NetworkDispatcher, buf buffer.Buffer, proto tcpip.NetworkProtocolNumber, pktType tcpip.PacketType) {
	pkt := gvstack.NewPacketBuffer(gvstack.PacketBufferOptions{Payload: buf})
	pkt.PktType = pktType
	pkt.NetworkProtocolNumber = proto
	if !e.ParseHeader(pkt) {
		pkt.DecRef()
		e.rxBad.Add(1)
		return
	}
	d.DeliverNetworkPacket(proto, pkt)
	pkt.DecRef()
}

// GSOMaxSize implements stack.GSOEndpoint: the largest TCP segment the
// stack may hand over for segmentation here.
func (e *linkEndpoint) GSOMaxSize() uint32 { return gsoMaxSize }

// SupportedGSO implements stack.GSOEndpoint: "host" GSO, with this endpoint
// as the host (gso.go).
func (e *linkEndpoint) SupportedGSO() gvstack.SupportedGSO { return gvstack.HostGSOSupported }
