package netsim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"geneve64/nat64/udpbatch"
)

// Host is an end system on one segment with one or more addresses.
type Host struct {
	Name  string
	seg   *Segment
	addrs []netip.Addr

	mu      sync.Mutex
	sockets map[uint16]*Socket
	// Dropped counts packets for a port nobody listens on or whose socket queue was full.
	Dropped Counter
}

// NewHost puts a host with addrs on seg.
func NewHost(name string, seg *Segment, addrs ...netip.Addr) *Host {
	h := &Host{Name: name, seg: seg, addrs: addrs, sockets: make(map[uint16]*Socket)}
	for _, a := range addrs {
		seg.attach(a, h)
	}
	return h
}

// Addr returns the host's first address.
func (h *Host) Addr() netip.Addr { return h.addrs[0] }

// HasIPv4 reports whether the host has an IPv4 address: whether it reaches
// IPv4 without NAT64. It is a nat64.Config.HasIPv4.
func (h *Host) HasIPv4(netip.Addr) bool {
	for _, a := range h.addrs {
		if a.Is4() {
			return true
		}
	}
	return false
}

// Listen binds a socket; it is a nat64.ListenFunc. An unspecified address
// binds every address of the host; port 0 picks a free one.
func (h *Host) Listen(laddr netip.AddrPort) (udpbatch.PacketConn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a := laddr.Addr(); !a.IsUnspecified() && !h.owns(a) {
		return nil, fmt.Errorf("netsim: %s has no address %s", h.Name, a)
	}
	port := laddr.Port()
	for port == 0 {
		if p := uint16(32768 + rand.IntN(28000)); h.sockets[p] == nil {
			port = p
		}
	}
	if h.sockets[port] != nil {
		return nil, fmt.Errorf("netsim: %s port %d in use", h.Name, port)
	}
	s := &Socket{host: h, local: netip.AddrPortFrom(laddr.Addr(), port), in: make(chan Packet, 4096), closed: make(chan struct{})}
	h.sockets[port] = s
	return s, nil
}

func (h *Host) owns(a netip.Addr) bool {
	for _, x := range h.addrs {
		if x == a {
			return true
		}
	}
	return false
}

func (h *Host) receive(p Packet, _ *Segment) {
	h.mu.Lock()
	s := h.sockets[p.Dst.Port()]
	h.mu.Unlock()
	if s == nil || (!s.local.Addr().IsUnspecified() && s.local.Addr() != p.Dst.Addr()) {
		h.Dropped.Add(1)
		return
	}
	select {
	case s.in <- p:
	case <-s.closed:
	default:
		h.Dropped.Add(1) // a full socket buffer drops, as a kernel's does
	}
}

// source picks the host's address for a packet to dst.
func (h *Host) source(dst netip.Addr) (netip.Addr, bool) {
	for _, a := range h.addrs {
		if a.Is4() == dst.Is4() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// Socket is a simulated UDP socket: a udpbatch.PacketConn.
type Socket struct {
	host   *Host
	local  netip.AddrPort
	in     chan Packet
	closed chan struct{}
	once   sync.Once
}

// LocalAddr implements udpbatch.PacketConn.
func (s *Socket) LocalAddr() netip.AddrPort { return s.local }

// BatchSize implements udpbatch.PacketConn.
func (s *Socket) BatchSize() int { return 32 }

// ReadBatch implements udpbatch.PacketConn.
func (s *Socket) ReadBatch(msgs []udpbatch.Message) (int, error) {
	n := 0
	select {
	case p := <-s.in:
		s.put(&msgs[0], p)
		n = 1
	case <-s.closed:
		return 0, net.ErrClosed
	}
	for n < len(msgs) {
		select {
		case p := <-s.in:
			s.put(&msgs[n], p)
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

func (s *Socket) put(m *udpbatch.Message, p Packet) {
	m.N = copy(m.Buf, p.Payload)
	m.Addr = p.Src
}

// WriteBatch implements udpbatch.PacketConn.
func (s *Socket) WriteBatch(msgs []udpbatch.Message) (int, error) {
	select {
	case <-s.closed:
		return 0, net.ErrClosed
	default:
	}
	var train uint64
	for i, m := range msgs {
		// Consecutive datagrams to one destination leave a Linux socket as
		// one UDP GSO datagram: they share a train, and a policer takes or
		// drops them together.
		if i == 0 || m.Addr != msgs[i-1].Addr {
			train = trains.Add(1)
		}
		src := s.local.Addr()
		if src.IsUnspecified() || src.Is4() != m.Addr.Addr().Is4() {
			var ok bool
			if src, ok = s.host.source(m.Addr.Addr()); !ok || (!s.local.Addr().IsUnspecified() && src != s.local.Addr()) {
				return i, fmt.Errorf("netsim: %s cannot reach %s: %w", s.local, m.Addr, errUnreachable)
			}
		}
		s.host.seg.send(Packet{Src: netip.AddrPortFrom(src, s.local.Port()), Dst: m.Addr, Payload: append([]byte(nil), m.Buf...), Train: train})
	}
	return len(msgs), nil
}

var errUnreachable = errors.New("network unreachable")

// trains numbers the GSO datagrams of every socket: 0 is no train.
var trains atomic.Uint64

// Close implements udpbatch.PacketConn.
func (s *Socket) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.host.mu.Lock()
		if s.host.sockets[s.local.Port()] == s {
			delete(s.host.sockets, s.local.Port())
		}
		s.host.mu.Unlock()
	})
	return nil
}
