package stack

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

const nicID tcpip.NICID = 1

// Stack is one endpoint's inner network: a gVisor netstack with one NIC
// whose link is the tunnel.
type Stack struct {
	cfg Config
	s   *gvstack.Stack
	ep  *linkEndpoint
	log *slog.Logger
	dns *resolver
	egr *egress
	// ports picks the local ports of the stack's own TCP connections.
	ports *portPicker
	once  sync.Once
}

// New builds a stack that sends its frames into link. Frames from the
// tunnel go in through [Stack.DeliverFrames].
func New(link Link, cfg Config) (*Stack, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ndp := ipv6.NDPConfigurations{HandleRAs: ipv6.HandlingRAsDisabled}
	if cfg.SLAAC {
		ndp = ipv6.NDPConfigurations{
			HandleRAs:              ipv6.HandlingRAsAlwaysEnabled,
			DiscoverDefaultRouters: true,
			DiscoverOnLinkPrefixes: true,
			AutoGenGlobalAddresses: true,
		}
	}
	s := gvstack.New(gvstack.Options{
		NetworkProtocols: []gvstack.NetworkProtocolFactory{
			ipv4.NewProtocol,
			ipv6.NewProtocolWithOptions(ipv6.Options{NDPConfigs: ndp, AutoGenLinkLocal: cfg.Payload == Ethernet}),
			arp.NewProtocol,
		},
		TransportProtocols: []gvstack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		// HandleLocal loops packets to the stack's own addresses back
		// inside it. Egress cannot have it: in promiscuous mode every source
		// address counts as the stack's own, and HandleLocal then drops every
		// incoming packet as a spoofed local source.
		HandleLocal: !cfg.Egress,
	})
	st := &Stack{cfg: cfg, s: s, log: cfg.Logger, ports: newPortPicker(s.PortRange())}
	if err := applyTCPSettings(s, cfg.TCP); err != nil {
		s.Close()
		return nil, err
	}
	st.ep = newLinkEndpoint(link, uint32(cfg.MTU), cfg.Payload == Ethernet, tcpip.LinkAddress(cfg.MAC))
	// No queueing discipline: the link endpoint batches on its own,
	// without a goroutine to hand each packet to (sender.go).
	if err := s.CreateNICWithOptions(nicID, st.ep, gvstack.NICOptions{Name: "geneve64", QDisc: directQDisc{st.ep}}); err != nil {
		s.Close()
		return nil, fmt.Errorf("stack: creating NIC: %s", err)
	}
	if err := st.configure(); err != nil {
		s.Close()
		return nil, err
	}
	st.dns = newResolver(st)
	if cfg.Egress {
		if err := st.startEgress(); err != nil {
			st.Close()
			return nil, err
		}
	}
	return st, nil
}

// configure adds the inner addresses and the route table.
func (st *Stack) configure() error {
	var routes []tcpip.Route
	for _, a := range st.cfg.Addrs {
		proto := protocolOf(a.Addr())
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddressWithPrefix{
			Address: tcpipAddr(a.Addr()), PrefixLen: a.Bits(),
		}}
		if err := st.s.AddProtocolAddress(nicID, pa, gvstack.AddressProperties{}); err != nil {
			return fmt.Errorf("stack: adding address %s: %s", a, err)
		}
		routes = append(routes, tcpip.Route{Destination: subnet(a.Masked()), NIC: nicID})
	}
	for _, r := range st.cfg.Routes {
		rt := tcpip.Route{Destination: subnet(r.Dst), NIC: nicID}
		if r.Via.IsValid() {
			rt.Gateway = tcpipAddr(r.Via)
		}
		routes = append(routes, rt)
	}
	if st.cfg.Payload == Ethernet {
		routes = append(routes, tcpip.Route{Destination: subnet(netip.MustParsePrefix("fe80::/64")), NIC: nicID})
	}
	st.s.SetRouteTable(routes)
	return nil
}

// DeliverFrames takes frames received from the tunnel; it is the tunnel
// endpoint's InnerLink.
func (st *Stack) DeliverFrames(frames [][]byte) { st.ep.DeliverFrames(frames) }

// Addrs returns the stack's inner addresses, SLAAC ones included.
func (st *Stack) Addrs() []netip.Prefix {
	var out []netip.Prefix
	for _, pa := range st.s.NICInfo()[nicID].ProtocolAddresses {
		if pa.Protocol == arp.ProtocolNumber {
			continue
		}
		a, ok := netip.AddrFromSlice(pa.AddressWithPrefix.Address.AsSlice())
		if !ok || a.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, netip.PrefixFrom(a, pa.AddressWithPrefix.PrefixLen))
	}
	return out
}

// MTU is the inner IP MTU.
func (st *Stack) MTU() int { return int(st.ep.MTU()) }

// Close stops the stack; open connections fail. It returns once the
// netstack's goroutines and the egress's flows and DNS answers have ended.
func (st *Stack) Close() error {
	st.once.Do(func() {
		if st.egr != nil {
			st.egr.close()
		}
		st.s.Close()
		st.s.Wait()
		st.ep.Close() // the NIC stays, but nothing sends through it now
		if st.egr != nil {
			st.egr.wg.Wait()
		}
	})
	return nil
}

// EgressRefused is the number of egress flows refused for why.
func (st *Stack) EgressRefused(why EgressRefusal) uint64 {
	if st.egr == nil || why >= numRefusals {
		return 0
	}
	return st.egr.policy.refused[why].Load()
}

// Stats are what the stack counts beyond gVisor's own statistics.
type Stats struct {
	// FramesForOthers counts Ethernet frames for another MAC, ignored.
	FramesForOthers uint64
	// BadFrames counts frames too short or of an unknown type.
	BadFrames uint64
	// TCPFlows and UDPFlows are egress flows open now.
	TCPFlows, UDPFlows int64
	// FlowsRefused counts egress flows refused by a limit; EgressRefused
	// has every reason.
	FlowsRefused uint64
	// SegmentsMerged counts received TCP segments that reached the stack
	// merged with their neighbours (receive coalescing).
	SegmentsMerged uint64
	// SendQueueDrops counts outgoing frames dropped because the queue
	// behind a send under way was full (sender.go).
	SendQueueDrops uint64
	// TCPRetransmits, TCPTimeouts and TCPChecksumErrors are the netstack's
	// own TCP counters: segments sent again, retransmission timeouts, and
	// received segments dropped for a bad checksum.
	TCPRetransmits, TCPTimeouts, TCPChecksumErrors uint64
	// IPMalformed and TCPInvalid count received packets the netstack
	// dropped as malformed: IP headers, and TCP segments it could not
	// parse.
	IPMalformed, TCPInvalid uint64
}

// Stats returns the stack's counters.
func (st *Stack) Stats() Stats {
	tcp := st.s.Stats().TCP
	s := Stats{FramesForOthers: st.ep.rxOther.Load(), BadFrames: st.ep.rxBad.Load(), SegmentsMerged: st.ep.merged.Load(),
		SendQueueDrops: st.ep.out.dropped.Load(),
		TCPRetransmits: tcp.Retransmits.Value(), TCPTimeouts: tcp.Timeouts.Value(), TCPChecksumErrors: tcp.ChecksumErrors.Value(),
		IPMalformed: st.s.Stats().IP.MalformedPacketsReceived.Value(), TCPInvalid: tcp.InvalidSegmentsReceived.Value()}
	if st.egr != nil {
		s.TCPFlows, s.UDPFlows = st.egr.tcpFlows.Load(), st.egr.udpFlows.Load()
		s.FlowsRefused = st.egr.policy.refused[RefusedLimit].Load()
	}
	return s
}

func protocolOf(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}

func tcpipAddr(a netip.Addr) tcpip.Address {
	if a.Is4() {
		return tcpip.AddrFrom4(a.As4())
	}
	return tcpip.AddrFrom16(a.As16())
}

func netipAddr(a tcpip.Address) netip.Addr {
	x, _ := netip.AddrFromSlice(a.AsSlice())
	return x.Unmap()
}

func subnet(p netip.Prefix) tcpip.Subnet {
	return tcpip.AddressWithPrefix{Address: tcpipAddr(p.Addr()), PrefixLen: p.Bits()}.Subnet()
}
