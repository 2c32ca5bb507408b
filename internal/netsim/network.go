package netsim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// Packet is one UDP datagram in flight.
type Packet struct {
	Src, Dst netip.AddrPort
	Payload  []byte
	// Train is the UDP GSO datagram the packet left its host in, shared
	// with the packets sent with it; 0 for none.
	Train uint64
}

// node is anything a segment delivers packets to.
type node interface {
	receive(p Packet, from *Segment)
}

// Segment is one link: the addresses on it and, for everything else, a
// router (a NAT box's inside interface). Faults apply to packets sent on it.
type Segment struct {
	name   string
	mu     sync.RWMutex
	owners map[netip.Addr]node
	router node
	faults Faults
	tap    func(p Packet, fate string)
	rnd    *rand.Rand
	// The policer's token bucket: tokens left and when it was last filled.
	tokens float64
	filled time.Time
	// The policer's verdict on the last train it saw.
	train     uint64
	trainPass bool
	// Unroutable counts packets for which the segment had no owner or router.
	Unroutable Counter
}

// Faults are what a segment does to packets sent on it.
type Faults struct {
	Loss      float64       // probability a packet is lost
	Duplicate float64       // probability a packet is delivered twice
	Reorder   float64       // probability a packet is held back by ReorderBy
	ReorderBy time.Duration // how long a reordered packet is held (default 5 ms)
	Delay     time.Duration // added to every packet
	// Rate, when set, polices the segment as nft's "limit rate over"
	// does: a token bucket of Burst packets (default 20) refilled at Rate
	// packets a second, and every packet that finds it empty is lost. Like
	// the kernel's policer, it sees a UDP GSO datagram as one packet: a
	// train takes one token, and is lost whole. Loss then comes in bursts
	// of up to a batch of frames, not one frame at a time.
	Rate  float64
	Burst int
}

// police takes a token for one packet at now; false: the packet is lost.
// The caller holds s.mu.
func (s *Segment) police(f Faults, now time.Time) bool {
	burst := float64(f.Burst)
	if burst <= 0 {
		burst = 20
	}
	if s.filled.IsZero() {
		s.tokens = burst
	} else {
		s.tokens = min(burst, s.tokens+now.Sub(s.filled).Seconds()*f.Rate)
	}
	s.filled = now
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

// NewSegment makes an empty segment.
func NewSegment(name string) *Segment {
	return &Segment{name: name, owners: make(map[netip.Addr]node), rnd: rand.New(rand.NewPCG(uint64(len(name)), 1))}
}

// SetFaults changes the segment's faults from now on.
func (s *Segment) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.filled = time.Time{} // a new policer starts with a full bucket
	s.mu.Unlock()
}

func (s *Segment) attach(a netip.Addr, n node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.owners[a]; dup {
		panic(fmt.Sprintf("netsim: %s is already on segment %s", a, s.name))
	}
	s.owners[a] = n
}

// SetTap calls tap with every packet sent on the segment from now on, and
// its fate: "lost", "duplicated", "delayed" or "" (delivered). tap must not
// keep p.Payload.
func (s *Segment) SetTap(tap func(p Packet, fate string)) {
	s.mu.Lock()
	s.tap = tap
	s.mu.Unlock()
}

// send puts p on the segment, through its faults.
func (s *Segment) send(p Packet) {
	s.mu.Lock()
	f, tap := s.faults, s.tap
	var lost, dup, reorder bool
	if f.Loss > 0 || f.Duplicate > 0 || f.Reorder > 0 {
		lost = s.rnd.Float64() < f.Loss
		dup = s.rnd.Float64() < f.Duplicate
		reorder = s.rnd.Float64() < f.Reorder
	}
	if f.Rate > 0 {
		if p.Train == 0 || p.Train != s.train {
			s.train, s.trainPass = p.Train, s.police(f, time.Now())
		}
		lost = lost || !s.trainPass
	}
	s.mu.Unlock()
	if tap != nil {
		fate := ""
		switch {
		case lost:
			fate = "lost"
		case dup:
			fate = "duplicated"
		case reorder:
			fate = "delayed"
		}
		tap(p, fate)
	}
	if lost {
		return
	}
	delay := f.Delay
	if reorder {
		by := f.ReorderBy
		if by == 0 {
			by = 5 * time.Millisecond
		}
		delay += by
	}
	copies := 1
	if dup {
		copies = 2
	}
	for range copies {
		if delay > 0 {
			time.AfterFunc(delay, func() { s.deliver(p) })
		} else {
			s.deliver(p)
		}
	}
}

func (s *Segment) deliver(p Packet) {
	s.mu.RLock()
	n := s.owners[p.Dst.Addr()]
	if n == nil {
		n = s.router
	}
	s.mu.RUnlock()
	if n == nil {
		s.Unroutable.Add(1)
		return
	}
	n.receive(p, s)
}

// Counter is a counter safe for concurrent use.
type Counter struct {
	mu sync.Mutex
	n  int
}

// Add adds d.
func (c *Counter) Add(d int) {
	c.mu.Lock()
	c.n += d
	c.mu.Unlock()
}

// Load returns the count.
func (c *Counter) Load() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Resolver is a name table that implements nat64.Resolver.
type Resolver struct {
	mu    sync.RWMutex
	names map[string][]netip.Addr
}

// NewResolver makes an empty name table.
func NewResolver() *Resolver { return &Resolver{names: make(map[string][]netip.Addr)} }

// Set maps name to addrs (IPv4 and IPv6 alike), replacing what was there.
func (r *Resolver) Set(name string, addrs ...netip.Addr) {
	r.mu.Lock()
	r.names[name] = addrs
	r.mu.Unlock()
}

// LookupNetIP returns the addresses of host of the family network asks
// for ("ip", "ip4" or "ip6").
func (r *Resolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []netip.Addr
	for _, a := range r.names[host] {
		if network == "ip" || (network == "ip4") == a.Is4() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("netsim: no %s address for %q", network, host)
	}
	return out, nil
}
