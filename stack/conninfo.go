package stack

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// TCPConnInfo describes one TCP endpoint of the netstack, as `ss -ti`
// describes a kernel socket: where a transfer stalls, whether the bytes
// sit unread in a receive queue or unacknowledged at the sender says
// which side holds them.
type TCPConnInfo struct {
	Local, Remote netip.AddrPort
	// State is the TCP state, e.g. "ESTABLISHED" or "TIME-WAIT".
	State string
	// RecvQueue is bytes received in order and not yet read.
	RecvQueue int
	// Readable says a read would not wait (data, end of stream or error).
	Readable bool
	// RTT and RTO are the smoothed round-trip time and the retransmission
	// timeout; Cwnd is the congestion window in segments.
	RTT, RTO time.Duration
	Cwnd     uint32
	// Segment counters of this connection.
	SegmentsSent, SegmentsReceived, Retransmits, Timeouts, QueueDrops uint64
}

// String formats the connection on one line.
func (i TCPConnInfo) String() string {
	return fmt.Sprintf("%s %v -> %v recvq %d readable %t rtt %v rto %v cwnd %d sent %d rcvd %d retrans %d timeouts %d qdrops %d",
		i.State, i.Local, i.Remote, i.RecvQueue, i.Readable, i.RTT, i.RTO, i.Cwnd,
		i.SegmentsSent, i.SegmentsReceived, i.Retransmits, i.Timeouts, i.QueueDrops)
}

// TCPConns lists the stack's TCP endpoints, listeners included, ordered by
// local then remote address. It takes each endpoint's lock briefly, so it
// is for diagnostics, not for a packet path.
func (st *Stack) TCPConns() []TCPConnInfo {
	var out []TCPConnInfo
	for _, te := range st.s.RegisteredEndpoints() {
		ep, ok := te.(*tcp.Endpoint)
		if !ok {
			continue
		}
		out = append(out, tcpConnInfo(ep))
	}
	sort.Slice(out, func(a, b int) bool {
		if c := out[a].Local.Compare(out[b].Local); c != 0 {
			return c < 0
		}
		return out[a].Remote.Compare(out[b].Remote) < 0
	})
	return out
}

func tcpConnInfo(ep *tcp.Endpoint) TCPConnInfo {
	var i TCPConnInfo
	if info, ok := ep.Info().(*gvstack.TransportEndpointInfo); ok {
		i.Local = netip.AddrPortFrom(netipAddr(info.ID.LocalAddress), info.ID.LocalPort)
		i.Remote = netip.AddrPortFrom(netipAddr(info.ID.RemoteAddress), info.ID.RemotePort)
	}
	i.State = tcp.EndpointState(ep.State()).String()
	if n, err := ep.GetSockOptInt(tcpip.ReceiveQueueSizeOption); err == nil {
		i.RecvQueue = n
	}
	i.Readable = ep.Readiness(waiter.ReadableEvents) != 0
	var ti tcpip.TCPInfoOption
	if err := ep.GetSockOpt(&ti); err == nil {
		i.RTT, i.RTO, i.Cwnd = ti.RTT, ti.RTO, ti.SndCwnd
	}
	if s, ok := ep.Stats().(*tcp.Stats); ok {
		i.SegmentsSent = s.SegmentsSent.Value()
		i.SegmentsReceived = s.SegmentsReceived.Value()
		i.Retransmits = s.SendErrors.Retransmits.Value()
		i.Timeouts = s.SendErrors.Timeouts.Value()
		i.QueueDrops = s.ReceiveErrors.SegmentQueueDropped.Value()
	}
	return i
}
