package stack

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/waiter"
)

var pingSeq atomic.Uint32

// Ping sends one ICMP echo request to dst inside the tunnel and returns the
// round-trip time of the reply.
func (st *Stack) Ping(ctx context.Context, dst netip.Addr) (time.Duration, error) {
	dst = dst.Unmap()
	var wq waiter.Queue
	transport, network := icmp.ProtocolNumber6, ipv6.ProtocolNumber
	if dst.Is4() {
		transport, network = icmp.ProtocolNumber4, ipv4.ProtocolNumber
	}
	ep, terr := st.s.NewEndpoint(transport, network, &wq)
	if terr != nil {
		return 0, fmt.Errorf("stack: ping %s: %s", dst, terr)
	}
	defer ep.Close()
	if terr := ep.Connect(tcpip.FullAddress{NIC: nicID, Addr: tcpipAddr(dst)}); terr != nil {
		return 0, fmt.Errorf("stack: ping %s: %s", dst, terr)
	}
	seq := uint16(pingSeq.Add(1))
	req := make([]byte, 8+16)
	if dst.Is4() {
		req[0] = byte(header.ICMPv4Echo)
	} else {
		req[0] = byte(header.ICMPv6EchoRequest)
	}
	binary.BigEndian.PutUint16(req[6:], seq)
	copy(req[8:], "geneve64 ping!!!")

	entry, ready := waiter.NewChannelEntry(waiter.ReadableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)

	start := time.Now()
	if _, terr := ep.Write(bytes.NewReader(req), tcpip.WriteOptions{}); terr != nil {
		return 0, fmt.Errorf("stack: ping %s: %s", dst, terr)
	}
	var reply bytes.Buffer
	for {
		reply.Reset()
		_, terr := ep.Read(&reply, tcpip.ReadOptions{})
		if _, wouldBlock := terr.(*tcpip.ErrWouldBlock); wouldBlock {
			select {
			case <-ready:
				continue
			case <-ctx.Done():
				return 0, fmt.Errorf("stack: ping %s: %w", dst, ctx.Err())
			}
		}
		if terr != nil {
			return 0, fmt.Errorf("stack: ping %s: %s", dst, terr)
		}
		b := reply.Bytes()
		echoReply := byte(header.ICMPv4EchoReply)
		if !dst.Is4() {
			echoReply = byte(header.ICMPv6EchoReply)
		}
		if len(b) >= 8 && b[0] == echoReply && binary.BigEndian.Uint16(b[6:]) == seq {
			return time.Since(start), nil
		}
	}
}
