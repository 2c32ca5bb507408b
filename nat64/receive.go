package nat64

import (
	"net/netip"
	"time"

	"geneve64/geneve"
	"geneve64/nat64/udpbatch"
)

// rxState is the receive goroutine's scratch space, reused for every batch.
type rxState struct {
	deliver [][]byte   // frames for the inner link
	out     *sendBatch // echo replies and frames switched between peers
	last    rxMemo
}

// rxMemo remembers, for one batch, the sender of the previous packet and
// what the switch did with its frame. A batch is mostly one flow's
// packets: the next one like it skips the peer table, the path update
// (done already for this batch's clock) and the switch's table, each a
// lock and a map lookup that were half of a server's receive work.
type rxMemo struct {
	peer *peer // nil: nothing remembered
	id   netip.Addr
	from netip.AddrPort
	// The switch's answers for the previous frame of this sender.
	sw       bool // src, dst, dstPort and dstKnown are set
	src, dst switchKey
	dstPort  *peer
	dstKnown bool
}

// startBatch forgets the previous batch: peers may have expired or moved
// and the switch may have learned since.
func (rx *rxState) startBatch() { rx.last = rxMemo{} }

func (e *Endpoint) receiveLoop() {
	defer e.wg.Done()
	n := e.conn.BatchSize()
	msgs := make([]udpbatch.Message, n)
	bufs := make([][]byte, n)
	for i := range msgs {
		bufs[i] = make([]byte, udpbatch.MaxDatagram)
	}
	rx := &rxState{deliver: make([][]byte, 0, n), out: newSendBatch(n)}
	for {
		for i := range msgs {
			msgs[i].Buf = bufs[i] // ReadBatch may have lent us its own
		}
		k, err := e.conn.ReadBatch(msgs)
		if err != nil {
			select {
			case <-e.closed:
				return
			default:
			}
			if udpbatch.IsClosed(err) {
				return
			}
			e.log.Warn("outer receive failed", "err", err)
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		now := e.clock()
		rx.startBatch()
		for i := 0; i < k; i++ {
			e.receive(&msgs[i], now, rx)
		}
		if len(rx.deliver) > 0 {
			if e.inner != nil {
				e.inner.DeliverFrames(rx.deliver)
			}
			clear(rx.deliver)
			rx.deliver = rx.deliver[:0]
		}
		e.flush(rx.out)
	}
}

// receive checks one datagram in the order docs/PROTOCOL.md gives, and only
// then lets it touch a peer: create it, refresh it, or move its path.
func (e *Endpoint) receive(m *udpbatch.Message, now int64, rx *rxState) {
	pkt := m.Buf[:m.N]
	h, payload, err := geneve.Parse(pkt)
	if err != nil {
		e.stats.Drop(DropMalformed)
		return
	}
	// Authenticated mode checks the MAC before anything else looks at the
	// packet; the counter is checked once the sender's identity is known.
	var stamp authStamp
	if e.auth != nil {
		var ok bool
		if stamp, ok = e.auth.verify(&h, pkt); !ok {
			e.stats.Drop(DropAuth)
			return
		}
	}
	if h.VNI != e.cfg.VNI {
		e.stats.Drop(DropVNI)
		return
	}
	if h.CheckCritical(e.known) != nil {
		e.stats.Drop(DropCritical)
		return
	}
	id := m.Addr.Addr()
	if !e.cfg.NoOption {
		ends, err := FindOption(&h)
		if err != nil {
			e.stats.Drop(DropOption)
			return
		}
		if ends.Dst != e.cfg.Local.Addr() || !e.cfg.Remote.Contains(ends.Src) {
			e.stats.Drop(DropIdentity)
			return
		}
		id = ends.Src
	} else if e.single == nil && !e.cfg.Remote.Contains(id) {
		e.stats.Drop(DropIdentity) // plain GENEVE server: REMOTE filters outer addresses
		return
	}
	if e.auth != nil {
		// The window belongs to the sender, never to the path a packet
		// came by: a captured packet replayed from another port or host
		// meets the window that has seen it.
		key := windowKey{id: id}
		if e.cfg.NoOption {
			key = windowKey{sender: stamp.sender}
		}
		if w := e.window(key); w == nil || !w.accept(stamp.counter) {
			e.stats.Drop(DropReplay)
			return
		}
	}
	var oam oamMessage
	if h.OAM {
		if oam, err = parseOAM(payload); err != nil || h.Protocol != ProtocolOAM {
			e.stats.Drop(DropOAM)
			return
		}
	} else if !e.protocolOK(h.Protocol) {
		e.stats.Drop(DropMalformed)
		return
	}
	p := rx.last.peer
	if p == nil || rx.last.id != id || rx.last.from != m.Addr {
		if p = e.peerFor(id, m.Addr); p == nil {
			e.stats.Drop(DropPeerLimit)
			return
		}
		e.heard(p, m.Addr, now, rx.out)
		rx.last = rxMemo{peer: p, id: id, from: m.Addr}
	}
	if h.OAM {
		e.stats.OAMIn.Add(1)
		e.handleOAM(p, m.Addr, oam, now, rx)
		return
	}
	e.stats.FramesIn.Add(1)
	e.stats.BytesIn.Add(uint64(len(payload)))
	if e.single != nil || e.switchFrame(p, payload, rx.out, &rx.last, now) {
		rx.deliver = append(rx.deliver, payload)
	}
}

// windowKey names a sender's replay window: its identity (the NAT64
// option's source), or without the option the sender its authentication
// option names.
type windowKey struct {
	id     netip.Addr
	sender uint64
}

// window returns the replay window of a sender, nil when the table of
// windows is full (a flood of distinct authenticated senders).
func (e *Endpoint) window(key windowKey) *replayWindow {
	e.windowsMu.Lock()
	defer e.windowsMu.Unlock()
	w := e.windows[key]
	if w == nil {
		if len(e.windows) >= 16*e.cfg.MaxPeers {
			return nil
		}
		w = &replayWindow{}
		e.windows[key] = w
	}
	return w
}

func (e *Endpoint) protocolOK(proto uint16) bool {
	if e.cfg.Protocol == geneve.ProtocolEthernet {
		return proto == geneve.ProtocolEthernet
	}
	return proto == geneve.ProtocolIPv4 || proto == geneve.ProtocolIPv6
}

// peerFor returns the peer a valid packet is from, creating it on a server
// while there is room.
func (e *Endpoint) peerFor(id netip.Addr, from netip.AddrPort) *peer {
	if e.single != nil {
		return e.single
	}
	key := netip.AddrPortFrom(id, 0)
	if e.cfg.NoOption {
		key = from // plain GENEVE has no identities: each outer address is a peer
	}
	e.mu.RLock()
	p := e.peers[key]
	e.mu.RUnlock()
	if p != nil {
		return p
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if p = e.peers[key]; p != nil {
		return p
	}
	if len(e.peers) >= e.cfg.MaxPeers && !e.evictUnproven() {
		if e.fullLogged.CompareAndSwap(false, true) {
			e.log.Warn("peer table full: new peers refused until one expires", "max-peers", e.cfg.MaxPeers)
		}
		return nil
	}
	p = e.newPeer(id, key, netip.AddrPort{})
	e.peers[key] = p
	return p
}

// minMoveInterval is the least time between two moves of one peer's path.
const minMoveInterval = 250 * time.Millisecond

// heard records a valid packet from p and, where the mode learns paths,
// moves p's path to where the packet came from: the newest valid packet
// wins, once the new path has answered a challenge (validate.go).
func (e *Endpoint) heard(p *peer, from netip.AddrPort, now int64, b *sendBatch) {
	first := p.lastHeard.Swap(now) == 0
	if e.cfg.Mode == Server || e.cfg.Mode == Auto {
		if cur, ok := p.currentPath(); !ok || cur != from {
			switch last := p.lastMove.Load(); {
			case e.validates():
				e.challenge(p, from, now, b)
			case ok && last != 0 && now-last < int64(minMoveInterval):
				// Moves are rate-limited per peer: a roaming client waits at
				// most minMoveInterval, and a stream of packets from ever new
				// sources cannot make the path flap.
				e.stats.PathHeld.Add(1)
			default:
				e.setPath(p, from, now)
			}
		}
	}
	if first {
		path, ok := p.currentPath()
		if !ok {
			path = from // the candidate, being validated
		}
		e.log.Info("peer heard", "identity", p.id, "path", path, "from", from)
	}
	if p.silent.CompareAndSwap(true, false) {
		e.log.Info("peer heard again", "identity", p.id, "from", from)
	}
}

// handleOAM answers echo requests at once, to where they came from, and
// measures the round trip from replies.
func (e *Endpoint) handleOAM(p *peer, from netip.AddrPort, m oamMessage, now int64, rx *rxState) {
	switch m.kind {
	case oamEchoRequest:
		var body [oamLen]byte
		e.enqueueTo(rx.out, p, from, appendOAM(body[:0], oamMessage{kind: oamEchoReply, seq: m.seq, stamp: m.stamp}), true)
	case oamEchoReply:
		if e.validates() && e.answered(p, from, m.seq, now) {
			return
		}
		if cur, ok := p.currentPath(); ok && cur == from && m.stamp > 0 && m.stamp <= now {
			p.rtt.Store(now - m.stamp)
		}
	}
}

// setPath makes to p's path, as learned at now.
func (e *Endpoint) setPath(p *peer, to netip.AddrPort, now int64) {
	prev, had := p.currentPath()
	p.path.Store(&to) // a copy, so only a change allocates
	p.lastMove.Store(now)
	e.stats.PathChanges.Add(1)
	if had {
		e.log.Info("peer path moved", "identity", p.id, "from", prev, "to", to)
	}
}

// evictUnproven makes room in a full peer table by dropping the oldest
// peer that never proved its path, if there is one: a peer that did is
// never evicted for a newcomer. The caller holds e.mu.
func (e *Endpoint) evictUnproven() bool {
	if !e.validates() {
		return false
	}
	var oldest *peer
	for _, p := range e.peers {
		if _, ok := p.currentPath(); !ok && (oldest == nil || p.created < oldest.created) {
			oldest = p
		}
	}
	if oldest == nil {
		return false
	}
	e.removeLocked(oldest)
	e.stats.Evicted.Add(1)
	return true
}
