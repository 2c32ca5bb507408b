package nat64

import (
	"net/netip"
	"sync"

	"geneve64/geneve"
)

// switchKey is a learned inner address: a MAC for Ethernet payloads, an IP
// address for IP payloads.
type switchKey [16]byte

// switchTable is a server's learning switch: which port (a peer, or nil for
// the local stack) each inner address was last seen behind. It is what lets
// several clients share one inner segment.
type switchTable struct {
	mu    sync.RWMutex
	ports map[switchKey]*peer
	max   int
}

func newSwitchTable(max int) *switchTable {
	return &switchTable{ports: make(map[switchKey]*peer), max: max}
}

// addrs returns a frame's source and destination keys and whether the
// destination is a group (broadcast or multicast) address.
func frameAddrs(proto uint16, f []byte) (src, dst switchKey, group, ok bool) {
	switch proto {
	case geneve.ProtocolEthernet:
		if len(f) < 14 {
			return src, dst, false, false
		}
		copy(dst[:6], f[0:6])
		copy(src[:6], f[6:12])
		return src, dst, f[0]&1 != 0, true // the I/G bit
	default:
		if len(f) < 1 {
			return src, dst, false, false
		}
		switch f[0] >> 4 {
		case 4:
			if len(f) < 20 {
				return src, dst, false, false
			}
			s := netip.AddrFrom4([4]byte(f[12:16]))
			d := netip.AddrFrom4([4]byte(f[16:20]))
			src, dst = s.As16(), d.As16()
			return src, dst, d.IsMulticast() || d == netip.AddrFrom4([4]byte{255, 255, 255, 255}), true
		case 6:
			if len(f) < 40 {
				return src, dst, false, false
			}
			copy(src[:], f[8:24])
			copy(dst[:], f[24:40])
			return src, dst, dst[0] == 0xff, true
		}
		return src, dst, false, false
	}
}

// learn records that key was seen behind port. It does not let one port
// claim more than the table can hold: a full table learns nothing new, and
// unknown destinations are flooded, which is correct if slower.
func (s *switchTable) learn(key switchKey, port *peer) {
	s.mu.RLock()
	cur, ok := s.ports[key]
	s.mu.RUnlock()
	if ok && cur == port {
		return
	}
	s.mu.Lock()
	if _, ok := s.ports[key]; ok || len(s.ports) < s.max {
		s.ports[key] = port
	}
	s.mu.Unlock()
}

// lookup returns the port behind key: known is false for unknown addresses;
// port is nil for the local stack.
func (s *switchTable) lookup(key switchKey) (port *peer, known bool) {
	s.mu.RLock()
	port, known = s.ports[key]
	s.mu.RUnlock()
	if known && port != nil && port.expired.Load() {
		return nil, false
	}
	return port, known
}

// forget drops every address learned behind p.
func (s *switchTable) forget(p *peer) {
	s.mu.Lock()
	for k, v := range s.ports {
		if v == p {
			delete(s.ports, k)
		}
	}
	s.mu.Unlock()
}

// switchFrame is a server's learning switch. Its ports are the peers and
// the local stack (nil). It learns f's source behind ingress, queues f into
// b for the peers its destination is behind (every peer but ingress for
// group and unknown destinations), and reports whether the local stack
// should have f too. With last (the receive path), the previous frame's
// answers are reused for the same addresses and remembered for the next.
func (e *Endpoint) switchFrame(ingress *peer, f []byte, b *sendBatch, last *rxMemo) (local bool) {
	src, dst, group, ok := frameAddrs(e.cfg.Protocol, f)
	if !ok {
		e.stats.Drop(DropMalformed)
		return false
	}
	if last == nil || !last.sw || last.src != src {
		e.sw.learn(src, ingress)
	}
	var port *peer // group destinations are never known: they flood
	var known bool
	if !group {
		if last != nil && last.sw && last.dst == dst {
			port, known = last.dstPort, last.dstKnown
		} else {
			port, known = e.sw.lookup(dst)
		}
	}
	if last != nil {
		last.sw, last.src, last.dst, last.dstPort, last.dstKnown = true, src, dst, port, known
	}
	if known {
		switch {
		case port == ingress: // back where it came from: not ours to send
		case port == nil:
			return true
		default:
			if ingress != nil {
				e.stats.Forwarded.Add(1)
			}
			e.enqueue(b, port, f, false)
		}
		return false
	}
	before := b.n
	e.flood(b, f, ingress)
	if ingress != nil && b.n != before {
		e.stats.Forwarded.Add(1)
	}
	return ingress != nil
}
