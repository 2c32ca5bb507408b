package nat64

import (
	"net/netip"

	"geneve64/geneve"
	"geneve64/nat64/udpbatch"
)

// sendBatch collects outgoing datagrams for one WriteBatch. Its buffers grow
// to the largest packet seen and are then reused: no allocation per packet.
type sendBatch struct {
	msgs  []udpbatch.Message
	bufs  [][]byte
	peers []*peer
	oam   []bool
	n     int
}

func newSendBatch(size int) *sendBatch {
	return &sendBatch{
		msgs:  make([]udpbatch.Message, size),
		bufs:  make([][]byte, size),
		peers: make([]*peer, size),
		oam:   make([]bool, size),
	}
}

func (e *Endpoint) getBatch() *sendBatch  { return e.batches.Get().(*sendBatch) }
func (e *Endpoint) putBatch(b *sendBatch) { e.batches.Put(b) }

// SendFrames encapsulates inner frames and sends them to the peer each is
// for: the one peer, or on a server the port its learned destination is
// behind (all peers for group and unknown destinations). It returns how many
// frames it took; frames with nowhere to go are counted as drops, not errors.
// It may be called from several goroutines at once; frames may be reused
// when it returns.
func (e *Endpoint) SendFrames(frames [][]byte) (int, error) {
	b := e.getBatch()
	defer e.putBatch(b)
	var now int64
	if e.single == nil {
		now = e.clock()
	}
	for _, f := range frames {
		if e.single != nil {
			e.enqueue(b, e.single, f, false)
			continue
		}
		e.switchFrame(nil, f, b, nil, now)
	}
	return len(frames), e.flush(b)
}

// flood sends f to every peer but except.
func (e *Endpoint) flood(b *sendBatch, f []byte, except *peer) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	sent := false
	for _, p := range e.peers {
		if p != except {
			e.enqueue(b, p, f, false)
			sent = true
		}
	}
	if !sent && except == nil {
		e.stats.Drop(DropNoPeer)
	}
}

// enqueue adds one packet to p, encapsulating payload, flushing first if
// the batch is full.
func (e *Endpoint) enqueue(b *sendBatch, p *peer, payload []byte, oam bool) {
	path, ok := p.currentPath()
	if !ok {
		e.stats.Drop(DropNoPeer)
		return
	}
	e.enqueueTo(b, p, path, payload, oam)
}

func (e *Endpoint) enqueueTo(b *sendBatch, p *peer, to netip.AddrPort, payload []byte, oam bool) {
	if b.n == len(b.msgs) {
		e.flush(b)
	}
	hdr := p.hdr
	switch {
	case oam:
		hdr = p.oamHdr
	case len(payload) > 0 && payload[0]>>4 == 6 && e.cfg.Protocol != geneve.ProtocolEthernet:
		hdr = p.hdr6
	}
	buf := append(b.bufs[b.n][:0], hdr...)
	buf = append(buf, payload...)
	if e.auth != nil {
		e.auth.sign(buf, e.authOff)
	}
	b.bufs[b.n] = buf
	b.msgs[b.n] = udpbatch.Message{Buf: buf, Addr: to}
	b.peers[b.n] = p
	b.oam[b.n] = oam
	b.n++
}

// flush sends the batch. A datagram the socket refuses is counted and
// skipped, so one unreachable peer does not hold back the rest.
func (e *Endpoint) flush(b *sendBatch) error {
	var last error
	now := e.clock()
	for i := 0; i < b.n; {
		sent, err := e.conn.WriteBatch(b.msgs[i:b.n])
		for j := i; j < i+sent; j++ {
			e.account(b, j, now)
		}
		i += sent
		if err != nil {
			if udpbatch.IsClosed(err) {
				for ; i < b.n; i++ {
					e.stats.Drop(DropSendError)
				}
				last = err
				break
			}
			if i < b.n {
				e.stats.Drop(DropSendError)
				e.log.Debug("outer send failed", "to", b.msgs[i].Addr, "err", err)
				i++
			}
		} else if sent == 0 {
			break
		}
	}
	for i := range b.n {
		b.peers[i] = nil
	}
	b.n = 0
	return last
}

func (e *Endpoint) account(b *sendBatch, i int, now int64) {
	b.peers[i].lastSent.Store(now)
	if b.oam[i] {
		e.stats.OAMOut.Add(1)
		return
	}
	e.stats.FramesOut.Add(1)
	e.stats.BytesOut.Add(uint64(len(b.msgs[i].Buf) - len(b.peers[i].hdr)))
}
