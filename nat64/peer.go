package nat64

import (
	"net/netip"
	"sync/atomic"
	"time"

	"geneve64/geneve"
)

// peer is one far end: its identity, its path, its liveness, and the
// encoded headers every packet to it starts with.
type peer struct {
	id  netip.Addr     // identity; for plain GENEVE, the outer address
	key netip.AddrPort // key in the peer table
	// hdr and oamHdr are the GENEVE header plus NAT64 option for data and
	// OAM packets to this peer, computed once: sending copies them. With IP
	// payloads hdr says IPv4 and hdr6 IPv6, so each packet is labelled as
	// what it is.
	hdr, hdr6, oamHdr []byte

	path      atomic.Pointer[netip.AddrPort]
	lastHeard atomic.Int64 // clock() of the last valid packet; 0: never
	lastSent  atomic.Int64 // clock() of the last packet sent
	lastProbe atomic.Int64 // clock() of the last echo request sent
	lastMove  atomic.Int64 // clock() of the last learned path change
	created   int64
	rtt       atomic.Int64 // nanoseconds; 0: not measured yet
	seq       atomic.Uint64
	silent    atomic.Bool
	expired   atomic.Bool
	floods    floodBucket // server: what this peer may flood to the others
	// Path validation (validate.go): the path being proven, and when the
	// last challenge went out.
	candidate     atomic.Pointer[candidate]
	lastChallenge atomic.Int64
}

func (e *Endpoint) newPeer(id netip.Addr, key netip.AddrPort, path netip.AddrPort) *peer {
	p := &peer{id: id, key: key, created: e.clock()}
	p.hdr = e.header(id, false)
	p.hdr6 = p.hdr
	if e.cfg.Protocol != geneve.ProtocolEthernet {
		p.hdr = e.encodeHeader(id, false, geneve.ProtocolIPv4)
		p.hdr6 = e.encodeHeader(id, false, geneve.ProtocolIPv6)
	}
	p.oamHdr = e.header(id, true)
	if path.IsValid() {
		p.path.Store(&path)
	}
	return p
}

// header encodes the GENEVE header and option for packets to the peer id.
func (e *Endpoint) header(id netip.Addr, oam bool) []byte {
	if oam {
		return e.encodeHeader(id, true, ProtocolOAM)
	}
	return e.encodeHeader(id, false, e.cfg.Protocol)
}

func (e *Endpoint) encodeHeader(id netip.Addr, oam bool, proto uint16) []byte {
	h := geneve.Header{OAM: oam, Protocol: proto, VNI: e.cfg.VNI}
	if !e.cfg.NoOption {
		opt, err := AppendOption(nil, Endpoints{Src: e.cfg.Local.Addr(), Dst: id})
		if err != nil {
			panic(err) // identities were validated by Config.check
		}
		h.OptionBytes = opt
	}
	if e.cfg.Key != nil {
		h.OptionBytes = appendAuthOption(h.OptionBytes) // filled in per packet by sign
	}
	b, err := h.Append(nil)
	if err != nil {
		panic(err)
	}
	return b
}

func (p *peer) currentPath() (netip.AddrPort, bool) {
	if a := p.path.Load(); a != nil {
		return *a, true
	}
	return netip.AddrPort{}, false
}

// PeerStatus is what an endpoint knows of one peer.
type PeerStatus struct {
	// Name is unique among the endpoint's peers: the identity, or for
	// plain GENEVE (which has none) the outer address and port the peer
	// was first heard from, since peers on one host differ only by port.
	Name string
	// Identity is the peer's identity (its outer address for plain GENEVE).
	Identity netip.Addr
	// Path is where packets to the peer go; invalid until known.
	Path netip.AddrPort
	// LastSeen is when the last valid packet arrived; zero if never.
	LastSeen time.Time
	// RTT is the last OAM echo round trip; zero until measured.
	RTT time.Duration
	// Silent is set once nothing valid arrived for three keepalive intervals.
	Silent bool
}

func (e *Endpoint) status(p *peer) PeerStatus {
	s := PeerStatus{Name: p.id.String(), Identity: p.id, RTT: time.Duration(p.rtt.Load()), Silent: p.silent.Load()}
	if p.key.Port() != 0 {
		s.Name = p.key.String()
	}
	s.Path, _ = p.currentPath()
	if t := p.lastHeard.Load(); t != 0 {
		s.LastSeen = e.start.Add(time.Duration(t))
	}
	return s
}
