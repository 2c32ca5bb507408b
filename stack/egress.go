package stack

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"geneve64/internal/relay"
	"geneve64/internal/workers"
)

// egress terminates flows that peers send to any address and re-originates
// them from the host: what lets an unprivileged far end give a laptop access
// to its site.
type egress struct {
	st       *Stack
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	tcpFlows atomic.Int64
	udpFlows atomic.Int64
	dns      []closer
	dnsSlots chan struct{} // DNS queries in progress; see maxDNSQueries

	perPeerMu sync.Mutex
	perPeer   map[netip.Addr]int // flows open per inner source address

	policy *egressPolicy
	// Handshakes in progress (the host-side dial) per inner source
	// address, and in all: see startHandshake.
	handshakesMu    sync.Mutex
	handshakes      map[netip.Addr]int
	handshakesTotal int
}

// admit reserves a flow for src, refusing it past the per-peer limit.
func (e *egress) admit(src netip.Addr) bool {
	e.perPeerMu.Lock()
	defer e.perPeerMu.Unlock()
	if e.perPeer[src] >= e.st.cfg.MaxFlowsPerPeer {
		e.policy.refused[RefusedLimit].Add(1)
		return false
	}
	e.perPeer[src]++
	return true
}

func (e *egress) release(src netip.Addr) {
	e.perPeerMu.Lock()
	if e.perPeer[src]--; e.perPeer[src] <= 0 {
		delete(e.perPeer, src)
	}
	e.perPeerMu.Unlock()
}

type closer interface{ Close() error }

func (st *Stack) startEgress() error {
	ctx, cancel := context.WithCancel(context.Background())
	e := &egress{st: st, ctx: ctx, cancel: cancel, perPeer: make(map[netip.Addr]int), dnsSlots: make(chan struct{}, maxDNSQueries),
		policy: newEgressPolicy(st.cfg.EgressAllow, st.cfg.EgressDeny), handshakes: make(map[netip.Addr]int)}
	st.egr = e
	// Accept packets for any address, and answer from it.
	if err := st.s.SetPromiscuousMode(nicID, true); err != nil {
		return tcpErr("promiscuous mode", err)
	}
	if err := st.s.SetSpoofing(nicID, true); err != nil {
		return tcpErr("spoofing", err)
	}
	// Replies to any source need a route back: on-link for every address.
	st.s.AddRoute(tcpip.Route{Destination: subnet(netip.MustParsePrefix("0.0.0.0/0")), NIC: nicID})
	st.s.AddRoute(tcpip.Route{Destination: subnet(netip.MustParsePrefix("::/0")), NIC: nicID})

	// The forwarder completes a handshake only after the host-side dial
	// succeeded, and bounds the handshakes in flight.
	// gVisor starts a goroutine per flow; the flow moves at once to a
	// worker whose stack has already grown through a dial and a handshake.
	fwd := tcp.NewForwarder(st.s, 0, st.cfg.MaxInFlightTCP, func(r *tcp.ForwarderRequest) {
		workers.Go(func() { e.forwardTCP(r) })
	})
	st.s.SetTransportProtocolHandler(tcp.ProtocolNumber, fwd.HandlePacket)
	ufwd := udp.NewForwarder(st.s, e.forwardUDP)
	st.s.SetTransportProtocolHandler(udp.ProtocolNumber, ufwd.HandlePacket)
	if err := e.serveDNS(); err != nil {
		return err
	}
	st.log.Info("egress enabled: flows from peers leave from this host", "dns", "port 53 on inner addresses")
	return nil
}

func (e *egress) close() {
	e.cancel()
	for _, c := range e.dns {
		c.Close()
	}
}

// target is where a flow to dst goes on the host, or why it may not go.
// The endpoint's own inner addresses stand for the host itself: with
// EgressLoopback the flow goes to the same port on the host's loopback
// address (deny rules still apply), and without it is refused. Anything
// else is dst itself, as the policy allows.
func (e *egress) target(dst netip.AddrPort) (netip.AddrPort, EgressRefusal, bool) {
	for _, a := range e.st.cfg.Addrs {
		if a.Addr() != dst.Addr() {
			continue
		}
		if !e.st.cfg.EgressLoopback {
			e.policy.refused[RefusedLoopback].Add(1)
			return dst, RefusedLoopback, false
		}
		lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if dst.Addr().Is6() {
			lo = netip.IPv6Loopback()
		}
		t := netip.AddrPortFrom(lo, dst.Port())
		if matchesAny(e.policy.deny, t) {
			e.policy.refused[RefusedDenied].Add(1)
			return t, RefusedDenied, false
		}
		return t, 0, true
	}
	why, ok := e.policy.check(dst)
	return dst, why, ok
}

// open admits a flow from id's source and dials its target on the host.
// A flow that is refused or whose dial fails holds no slot afterwards.
func (e *egress) open(id gvstack.TransportEndpointID, network string) (src netip.Addr, host net.Conn, ok bool) {
	src = netipAddr(id.RemoteAddress)
	dst, why, ok := e.target(netip.AddrPortFrom(netipAddr(id.LocalAddress), id.LocalPort))
	if !ok {
		e.st.log.Debug("egress flow refused", "network", network, "from", src, "to", dst, "reason", why)
		return src, nil, false
	}
	if !e.admit(src) {
		return src, nil, false
	}
	host, err := e.st.cfg.EgressDial(e.ctx, network, dst.String())
	if err != nil {
		e.release(src)
		e.st.log.Debug("egress dial failed", "network", network, "to", dst, "err", err)
		return src, nil, false
	}
	return src, host, true
}

// track counts an admitted flow in flows before its relay starts, so that
// the flow limits see it at once.
func (e *egress) track(flows *atomic.Int64) {
	flows.Add(1)
	e.wg.Add(1)
}

// relayFlow relays a tracked flow, and uncounts it and gives its slot back
// when the relay ends.
func (e *egress) relayFlow(src netip.Addr, flows *atomic.Int64, relay func()) {
	defer e.wg.Done()
	defer flows.Add(-1)
	defer e.release(src)
	relay()
}

func (e *egress) forwardTCP(r *tcp.ForwarderRequest) {
	src := netipAddr(r.ID().RemoteAddress)
	if !e.startHandshake(src) {
		e.policy.refused[RefusedLimit].Add(1)
		r.Complete(true)
		return
	}
	src, host, ok := e.open(r.ID(), "tcp")
	e.endHandshake(src)
	if !ok {
		r.Complete(true) // a reset, as the target itself would have sent
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		e.release(src)
		host.Close()
		r.Complete(true)
		return
	}
	r.Complete(false)
	ep.SocketOptions().SetKeepAlive(true)
	inner := newTCPConn(&wq, ep)
	// This goroutine's stack has grown through the dial and the handshake:
	// the relay reuses it for the deep direction, into the netstack.
	e.track(&e.tcpFlows)
	e.relayFlow(src, &e.tcpFlows, func() { relay.Stream(host, inner) })
}

func (e *egress) forwardUDP(r *udp.ForwarderRequest) bool {
	if e.udpFlows.Load() >= int64(e.st.cfg.MaxUDPFlows) {
		e.policy.refused[RefusedLimit].Add(1)
		return false // dropped: the table is full
	}
	src, host, ok := e.open(r.ID(), "udp")
	if !ok {
		return false
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		e.release(src)
		host.Close()
		return false
	}
	inner := gonet.NewUDPConn(&wq, ep)
	// The UDP forwarder calls this on the stack's receive path: the relay
	// needs a goroutine of its own.
	e.track(&e.udpFlows)
	workers.Go(func() { e.relayFlow(src, &e.udpFlows, func() { relay.Datagrams(inner, host, e.st.cfg.UDPIdle) }) })
	return true
}

func tcpErr(what string, err tcpip.Error) error {
	return &net.OpError{Op: "egress", Err: errString(what + ": " + err.String())}
}

type errString string

// Error implements error.
func (e errString) Error() string { return string(e) }

// startHandshake reserves a handshake in progress for src. The forwarder
// holds a SYN's slot while the host side dials (up to 10 s to an address
// that never answers): without a share, one inner address sending SYNs to
// such addresses filled every slot, and every peer's new connections
// waited for them. While under half the slots are taken, any source may
// take more (a SOCKS5 front-end sends a browser's burst of connections from
// its one address); past that, a source holding its share gets no more,
// and the other half stays for everyone else.
func (e *egress) startHandshake(src netip.Addr) bool {
	e.handshakesMu.Lock()
	defer e.handshakesMu.Unlock()
	if e.handshakes[src] >= e.st.cfg.MaxHandshakesPerSource && 2*e.handshakesTotal >= e.st.cfg.MaxInFlightTCP {
		return false
	}
	e.handshakes[src]++
	e.handshakesTotal++
	return true
}

func (e *egress) endHandshake(src netip.Addr) {
	e.handshakesMu.Lock()
	if e.handshakes[src]--; e.handshakes[src] <= 0 {
		delete(e.handshakes, src)
	}
	e.handshakesTotal--
	e.handshakesMu.Unlock()
}
