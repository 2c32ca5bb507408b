package nat64

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"geneve64/geneve"
)

// switchKey is a learned inner address: a MAC for Ethernet payloads, an IP
// address for IP payloads.
type switchKey [16]byte

// switchTable is a server's learning switch: which port (a peer, or nil for
// the local stack) each inner address was last seen behind. It is what lets
// several clients share one inner segment.
//
// Clients of a server may be hostile, so every port owns at most perPort
// addresses (a ring: a new address replaces the port's oldest), entries not
// heard from in maxAge age out, and the table is sized so that every port's
// share fits: one client sending ever new source addresses can neither fill
// the table nor push another client's address out, which would turn the
// frames for that client into floods to everyone.
type switchTable struct {
	mu      sync.RWMutex
	ports   map[switchKey]*switchEntry
	owned   map[*peer]*keyRing
	perPort int
	maxAge  int64 // nanoseconds of the endpoint's clock
}

// switchEntry is one learned address; seen is refreshed under the read lock.
type switchEntry struct {
	port *peer
	seen atomic.Int64
}

// keyRing is the addresses one port owns, oldest first once full.
type keyRing struct {
	keys []switchKey
	next int
}

func newSwitchTable(perPort int, maxAge time.Duration) *switchTable {
	return &switchTable{ports: make(map[switchKey]*switchEntry), owned: make(map[*peer]*keyRing),
		perPort: perPort, maxAge: int64(maxAge)}
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

// learn records that key was seen behind port at now.
func (s *switchTable) learn(key switchKey, port *peer, now int64) {
	s.mu.RLock()
	e, ok := s.ports[key]
	if ok && e.port == port {
		e.seen.Store(now)
		s.mu.RUnlock()
		return
	}
	s.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok = s.ports[key]; ok {
		if e.port == port {
			e.seen.Store(now)
			return
		}
		// The address moved to another port: the old one owns it no more.
		// Its ring keeps the key; evicting it later checks the owner.
	}
	r := s.owned[port]
	if r == nil {
		r = &keyRing{keys: make([]switchKey, 0, s.perPort)}
		s.owned[port] = r
	}
	if len(r.keys) < s.perPort {
		r.keys = append(r.keys, key)
	} else {
		old := r.keys[r.next]
		if oe, ok := s.ports[old]; ok && oe.port == port {
			delete(s.ports, old)
		}
		r.keys[r.next] = key
		r.next = (r.next + 1) % s.perPort
	}
	e = &switchEntry{port: port}
	e.seen.Store(now)
	s.ports[key] = e
}

// lookup returns the port behind key at now: known is false for unknown or
// aged addresses; port is nil for the local stack.
func (s *switchTable) lookup(key switchKey, now int64) (port *peer, known bool) {
	s.mu.RLock()
	e, known := s.ports[key]
	s.mu.RUnlock()
	if !known || now-e.seen.Load() > s.maxAge || (e.port != nil && e.port.expired.Load()) {
		return nil, false
	}
	return e.port, true
}

// forget drops every address learned behind p.
func (s *switchTable) forget(p *peer) {
	s.mu.Lock()
	if r := s.owned[p]; r != nil {
		for _, k := range r.keys {
			if e, ok := s.ports[k]; ok && e.port == p {
				delete(s.ports, k)
			}
		}
		delete(s.owned, p)
	}
	s.mu.Unlock()
}

// len is the number of addresses learned, aged or not.
func (s *switchTable) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.ports)
}

// switchFrame is a server's learning switch. Its ports are the peers and
// the local stack (nil). It learns f's source behind ingress, queues f into
// b for the peers its destination is behind (every peer but ingress for
// group and unknown destinations), and reports whether the local stack
// should have f too. With last (the receive path), the previous frame's
// answers are reused for the same addresses and remembered for the next.
// now is the caller's clock(), read once per batch: reading the clock was
// 8% of a server's per-frame work.
func (e *Endpoint) switchFrame(ingress *peer, f []byte, b *sendBatch, last *rxMemo, now int64) (local bool) {
	src, dst, group, ok := frameAddrs(e.cfg.Protocol, f)
	if !ok {
		e.stats.Drop(DropMalformed)
		return false
	}
	if last == nil || !last.sw || last.src != src {
		e.sw.learn(src, ingress, now)
	}
	var port *peer // group destinations are never known: they flood
	var known bool
	if !group {
		if last != nil && last.sw && last.dst == dst {
			port, known = last.dstPort, last.dstKnown
		} else {
			port, known = e.sw.lookup(dst, now)
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
		case ingress != nil && e.cfg.IsolatePeers:
			e.stats.Drop(DropIsolated)
		default:
			if ingress != nil {
				e.stats.Forwarded.Add(1)
			}
			e.enqueue(b, port, f, false)
		}
		return false
	}
	if ingress == nil {
		e.flood(b, f, nil)
		return false
	}
	// A peer's group or unknown frame: the local stack has it, and the
	// other peers too unless they are isolated or this peer floods more
	// than its share (each flooded frame is one packet per peer).
	switch {
	case e.cfg.IsolatePeers:
	case !ingress.floods.allow(now, e.cfg.GroupRate):
		e.stats.Drop(DropFloodLimit)
	default:
		before := b.n
		e.flood(b, f, ingress)
		if b.n != before {
			e.stats.Forwarded.Add(1)
		}
	}
	return true
}

// floodBucket is a token bucket for the frames one peer floods to the
// others: rate a second, bursts of twice that. Only the receive goroutine
// touches it.
type floodBucket struct {
	tokens float64
	filled int64 // clock() of the last refill; 0: never
}

func (fb *floodBucket) allow(now int64, rate int) bool {
	burst := float64(2 * rate)
	if fb.filled == 0 {
		fb.tokens = burst
	} else {
		fb.tokens = min(burst, fb.tokens+float64(now-fb.filled)*float64(rate)/1e9)
	}
	fb.filled = now
	if fb.tokens < 1 {
		return false
	}
	fb.tokens--
	return true
}
