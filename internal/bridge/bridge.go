// Package bridge joins an endpoint's inner side to more than one local
// port: the netstack and a kernel TAP or TUN device (--tap, --tun). The
// endpoint sees one inner link, as it does with the netstack alone; the
// bridge learns which MAC address is behind which port, as a switch does,
// so a frame for the netstack does not go to the device, nor one between
// two hosts of the local site into the tunnel.
//
// It is its own package because it sits between nat64 (the tunnel) and
// stack (the netstack), which must not import each other, and it knows
// neither: only the two interfaces below.
package bridge

import (
	"sync"
)

// Tunnel is where frames leave for the peers: the endpoint.
type Tunnel interface {
	SendFrames(frames [][]byte) (int, error)
}

// Receiver takes the frames delivered to a local port. The frames stay
// valid only until it returns.
type Receiver interface {
	DeliverFrames(frames [][]byte)
}

// maxMACs bounds the table: frames from the tunnel carry any source
// address a peer writes into them. When full, it starts over.
const maxMACs = 4096

// Bridge is the local side of one endpoint.
type Bridge struct {
	tunnel   Tunnel
	ethernet bool

	mu    sync.Mutex
	ports []*Port
	macs  map[[6]byte]*Port // nil: behind the tunnel

	scratch sync.Pool // *batches
}

// Port is one local port: a Tunnel for what it sends, attached to the
// Receiver that takes what the bridge delivers to it.
type Port struct {
	b    *Bridge
	name string
	rx   Receiver
	idx  int
}

// batches is one scratch list of frames per port and one for the tunnel.
type batches struct {
	port   [][][]byte
	tunnel [][]byte
}

// New makes a bridge in front of tunnel. Without ethernet (IP payloads)
// there are no addresses to learn: what the tunnel delivers goes to every
// port, and what a port sends goes into the tunnel.
func New(tunnel Tunnel, ethernet bool) *Bridge {
	b := &Bridge{tunnel: tunnel, ethernet: ethernet, macs: make(map[[6]byte]*Port)}
	b.scratch.New = func() any { return new(batches) } // get sizes it to the ports
	return b
}

// Add makes a port; all ports are added before frames flow.
func (b *Bridge) Add(name string) *Port {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := &Port{b: b, name: name, idx: len(b.ports)}
	b.ports = append(b.ports, p)
	return p
}

// Attach sets the receiver of what the bridge delivers to p.
func (p *Port) Attach(rx Receiver) { p.rx = rx }

// Name is the port's name.
func (p *Port) Name() string { return p.name }

func (b *Bridge) get() *batches {
	s := b.scratch.Get().(*batches)
	for len(s.port) < len(b.ports) {
		s.port = append(s.port, nil)
	}
	return s
}

func (b *Bridge) put(s *batches) {
	for i := range s.port {
		clear(s.port[i])
		s.port[i] = s.port[i][:0]
	}
	clear(s.tunnel)
	s.tunnel = s.tunnel[:0]
	b.scratch.Put(s)
}

// macs of an Ethernet frame; ok is false for a runt.
func addrs(f []byte) (dst, src [6]byte, ok bool) {
	if len(f) < 14 {
		return dst, src, false
	}
	copy(dst[:], f[0:6])
	copy(src[:], f[6:12])
	return dst, src, true
}

func group(mac [6]byte) bool { return mac[0]&1 == 1 }

// learnLocked records that src is behind p (nil: the tunnel).
func (b *Bridge) learnLocked(src [6]byte, p *Port) {
	if group(src) {
		return
	}
	if old, ok := b.macs[src]; ok && old == p {
		return
	}
	if len(b.macs) >= maxMACs {
		clear(b.macs)
	}
	b.macs[src] = p
}

// DeliverFrames takes the frames the tunnel received and hands each to
// the port its destination is behind, or to every port.
func (b *Bridge) DeliverFrames(frames [][]byte) {
	s := b.get()
	defer b.put(s)
	b.mu.Lock()
	for _, f := range frames {
		if !b.ethernet {
			for i := range b.ports {
				s.port[i] = append(s.port[i], f)
			}
			continue
		}
		dst, src, ok := addrs(f)
		if !ok {
			continue
		}
		b.learnLocked(src, nil)
		if to, known := b.macs[dst]; known && !group(dst) {
			if to != nil {
				s.port[to.idx] = append(s.port[to.idx], f)
			}
			continue // behind the tunnel: back where it came from
		}
		for i := range b.ports {
			s.port[i] = append(s.port[i], f)
		}
	}
	b.mu.Unlock()
	b.deliver(s)
}

// deliver hands each port its frames, outside the lock: a receiver may
// send, and so come back into the bridge.
func (b *Bridge) deliver(s *batches) {
	for i, p := range b.ports {
		if len(s.port[i]) > 0 && p.rx != nil {
			p.rx.DeliverFrames(s.port[i])
		}
	}
}

// SendFrames takes the frames a port sends: into the tunnel, to another
// port, or both for broadcasts and unknown destinations.
func (p *Port) SendFrames(frames [][]byte) (int, error) {
	b := p.b
	if len(b.ports) == 1 {
		return b.tunnel.SendFrames(frames) // nothing to choose
	}
	s := b.get()
	defer b.put(s)
	b.mu.Lock()
	for _, f := range frames {
		if !b.ethernet {
			s.tunnel = append(s.tunnel, f)
			continue
		}
		dst, src, ok := addrs(f)
		if !ok {
			continue
		}
		b.learnLocked(src, p)
		if to, known := b.macs[dst]; known && !group(dst) {
			switch {
			case to == nil:
				s.tunnel = append(s.tunnel, f)
			case to != p:
				s.port[to.idx] = append(s.port[to.idx], f)
			}
			continue
		}
		s.tunnel = append(s.tunnel, f)
		for i, q := range b.ports {
			if q != p {
				s.port[i] = append(s.port[i], f)
			}
		}
	}
	b.mu.Unlock()
	b.deliver(s)
	if len(s.tunnel) == 0 {
		return len(frames), nil
	}
	_, err := b.tunnel.SendFrames(s.tunnel)
	return len(frames), err
}
