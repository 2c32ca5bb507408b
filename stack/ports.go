package stack

import (
	"encoding/binary"
	"hash/maphash"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// portPicker chooses the local port of each TCP connection the stack
// opens, as RFC 6056's Algorithm 3 does (and Linux, in its way): a hash of
// the destination under a secret picks where in the ephemeral range a
// destination's ports start, and a counter moves on by one port per
// connection. Successive connections to one destination then take
// successive ports, and a port comes back to it only after the whole range
// has gone by.
//
// gVisor picks a port at random for each connection instead. Where the
// far end closes first (an HTTP/1.0 server, say), its end of each
// connection waits in TIME-WAIT, and an egress end has no listener to hand
// a SYN that reuses those ports: it drops the SYN, and the dial waits a
// full second for its retransmission. With random ports that was one
// connection in 80 at 600 connections a second (TestServerClosesFirst).
type portPicker struct {
	seed        maphash.Seed
	next        atomic.Uint32
	first, size uint32
}

func newPortPicker(first, last uint16) *portPicker {
	return &portPicker{seed: maphash.MakeSeed(), first: uint32(first), size: uint32(last) - uint32(first) + 1}
}

// pick offers bind the ports for dst in order until it takes one, and
// returns that port, or 0 when it took none (every port is in use).
func (p *portPicker) pick(dst tcpip.FullAddress, bind func(port uint16) bool) uint16 {
	var key [18]byte
	n := copy(key[:], dst.Addr.AsSlice())
	binary.BigEndian.PutUint16(key[n:], dst.Port)
	start := uint32(maphash.Bytes(p.seed, key[:n+2])) + p.next.Add(1)
	for i := uint32(0); i < p.size; i++ {
		port := uint16(p.first + (start+i)%p.size)
		if bind(port) {
			// Ports tried and found taken stay behind the counter.
			p.next.Add(i)
			return port
		}
	}
	return 0
}
