package netsim

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"geneve64/geneve"
	"geneve64/nat64"
)

// NATConfig describes a NAT box.
type NATConfig struct {
	// Public is the box's address on its outside segment.
	Public netip.Addr
	// Prefix makes it a NAT64 (IPv6 inside, IPv4 outside, addresses
	// mapped under Prefix); unset, it is a NAT44.
	Prefix netip.Prefix
	// Timeout is how long a mapping lives without outbound traffic
	// (default 30 s, as Linux conntrack's for UDP).
	Timeout time.Duration
	// Gateway, if set, runs the extension's gateway beside the NAT64: GENEVE
	// to Public:6081 and GENEVE leaving with source port 6081 go through its
	// rules instead of the NAT. Its IPv4 and Prefix are the box's.
	Gateway *nat64.GatewayRules
}

// NAT is a stateful NAT box: endpoint-independent mapping with random
// external ports, endpoint-dependent (address and port) filtering, so
// unsolicited inbound packets are dropped, and idle timeouts.
type NAT struct {
	Name            string
	cfg             NATConfig
	inside, outside *Segment

	mu       sync.Mutex
	byInside map[netip.AddrPort]*mapping
	byPort   map[uint16]*mapping
	rnd      *rand.Rand

	// Filtered counts inbound packets dropped for want of a mapping or
	// permission; GatewayDrops those the gateway rules refused.
	Filtered, GatewayDrops Counter
	// GatewayStats are the gateway's own counters.
	GatewayStats nat64.Stats
}

type mapping struct {
	inside  netip.AddrPort
	port    uint16
	last    time.Time
	remotes map[netip.AddrPort]bool
}

// NewNAT puts a NAT box between inside and outside: it becomes inside's
// router and owns Public on outside.
func NewNAT(name string, inside, outside *Segment, cfg NATConfig) *NAT {
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	n := &NAT{Name: name, cfg: cfg, inside: inside, outside: outside,
		byInside: make(map[netip.AddrPort]*mapping), byPort: make(map[uint16]*mapping),
		rnd: rand.New(rand.NewPCG(uint64(len(name)), 7))}
	if cfg.Gateway != nil {
		cfg.Gateway.IPv4 = cfg.Public
		cfg.Gateway.Prefix = cfg.Prefix
		cfg.Gateway.Stats = &n.GatewayStats
		if err := cfg.Gateway.Check(); err != nil {
			panic("netsim: " + err.Error())
		}
	}
	inside.mu.Lock()
	inside.router = n
	inside.mu.Unlock()
	outside.attach(cfg.Public, n)
	return n
}

// Rebind forgets every mapping, as a NAT that rebooted or ran out of
// memory does: each inside socket gets a new external port with its next
// packet.
func (n *NAT) Rebind() {
	n.mu.Lock()
	n.byInside = make(map[netip.AddrPort]*mapping)
	n.byPort = make(map[uint16]*mapping)
	n.mu.Unlock()
}

// Mappings returns how many live mappings the box holds.
func (n *NAT) Mappings() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.byInside {
		if time.Since(m.last) < n.cfg.Timeout {
			c++
		}
	}
	return c
}

func (n *NAT) receive(p Packet, from *Segment) {
	if from == n.inside {
		n.outbound(p)
	} else {
		n.inbound(p)
	}
}

func (n *NAT) outbound(p Packet) {
	if g := n.cfg.Gateway; g != nil {
		src, dst, why, ok := g.Outbound(p.Src, p.Dst, p.Payload)
		if ok {
			n.outside.send(Packet{Src: src, Dst: dst, Payload: p.Payload, Train: p.Train})
			return
		}
		if why != nat64.DropNotGENEVE {
			n.GatewayDrops.Add(1)
			return
		}
	}
	dst := p.Dst.Addr()
	if n.cfg.Prefix.IsValid() {
		v4, err := nat64.Extract(n.cfg.Prefix, dst)
		if err != nil {
			n.inside.Unroutable.Add(1)
			return
		}
		dst = v4
	} else if !dst.Is4() {
		n.inside.Unroutable.Add(1)
		return
	}
	to := netip.AddrPortFrom(dst, p.Dst.Port())
	now := time.Now()
	n.mu.Lock()
	m := n.byInside[p.Src]
	if m == nil || now.Sub(m.last) >= n.cfg.Timeout {
		if m != nil {
			delete(n.byPort, m.port)
		}
		m = &mapping{inside: p.Src, port: n.freePort(now), remotes: make(map[netip.AddrPort]bool)}
		n.byInside[p.Src] = m
		n.byPort[m.port] = m
	}
	m.last = now
	m.remotes[to] = true
	port := m.port
	n.mu.Unlock()
	n.outside.send(Packet{Src: netip.AddrPortFrom(n.cfg.Public, port), Dst: to, Payload: p.Payload, Train: p.Train})
}

// freePort picks a random external port not in use; 6081 stays the
// gateway's. Called with n.mu held.
func (n *NAT) freePort(now time.Time) uint16 {
	for {
		p := uint16(1024 + n.rnd.IntN(64000))
		if p == 6081 {
			continue
		}
		if m := n.byPort[p]; m == nil || now.Sub(m.last) >= n.cfg.Timeout {
			if m != nil {
				delete(n.byInside, m.inside)
			}
			return p
		}
	}
}

func (n *NAT) inbound(p Packet) {
	if g := n.cfg.Gateway; g != nil && p.Dst.Port() == gatewayPort(g) {
		src, dst, _, ok := g.Inbound(p.Src, p.Dst, p.Payload)
		if !ok {
			n.GatewayDrops.Add(1)
			return
		}
		n.inside.send(Packet{Src: src, Dst: dst, Payload: p.Payload, Train: p.Train})
		return
	}
	now := time.Now()
	n.mu.Lock()
	m := n.byPort[p.Dst.Port()]
	ok := m != nil && now.Sub(m.last) < n.cfg.Timeout && m.remotes[p.Src]
	var inside netip.AddrPort
	if ok {
		inside = m.inside
	}
	n.mu.Unlock()
	if !ok {
		n.Filtered.Add(1)
		return
	}
	src := p.Src
	if n.cfg.Prefix.IsValid() {
		a, err := nat64.Embed(n.cfg.Prefix, src.Addr())
		if err != nil {
			n.Filtered.Add(1)
			return
		}
		src = netip.AddrPortFrom(a, src.Port())
	}
	n.inside.send(Packet{Src: src, Dst: inside, Payload: p.Payload, Train: p.Train})
}

func gatewayPort(g *nat64.GatewayRules) uint16 {
	if g.Port == 0 {
		return geneve.Port
	}
	return g.Port
}
