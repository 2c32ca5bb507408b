package udpbatch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// UDPConn is a [PacketConn] over a real UDP socket. On Linux it reads and
// writes batches with recvmmsg and sendmmsg; elsewhere one datagram per call.
type UDPConn struct {
	c     *net.UDPConn
	local netip.AddrPort
	is6   bool

	wmu   sync.Mutex // guards the batch writer's scratch space
	batch *batchIO   // nil where the platform has no batch I/O
}

// defaultBatch is how many datagrams move per system call where batching
// works: large enough to amortise the call, small enough to keep latency low.
const defaultBatch = 64

// ListenUDP binds a UDP socket to laddr. An unspecified IPv6 address (::)
// gives a dual-stack socket that also reaches IPv4 peers where the system
// allows it.
func ListenUDP(laddr netip.AddrPort) (PacketConn, error) {
	return ListenConfig{}.Listen(laddr)
}

// ListenConfig holds the socket's options beyond its address.
type ListenConfig struct {
	// TTL reports each received datagram's TTL (IPv4) or hop limit (IPv6)
	// in Message.TTL, and sends each datagram with the Message.TTL given,
	// as a router relaying it must. Linux only; elsewhere TTLs read as 0
	// and are not set.
	TTL bool
	// NoGSO sends every datagram as a packet of its own, never a run of
	// them as one UDP GSO packet: for a load generator whose datagrams
	// must cross the network one by one, as a busy peer's would.
	NoGSO bool
}

// Listen binds a UDP socket to laddr with lc's options.
func (lc ListenConfig) Listen(laddr netip.AddrPort) (*UDPConn, error) {
	network := "udp"
	if laddr.Addr().Is4() {
		network = "udp4"
	} else if laddr.Addr().Is6() && !laddr.Addr().IsUnspecified() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(laddr))
	if err != nil {
		return nil, fmt.Errorf("binding outer socket to %s: %w", laddr, err)
	}
	setSocketBuffers(c)
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	u := &UDPConn{c: c, local: local, is6: !local.Addr().Unmap().Is4()}
	u.batch = newBatchIO(c, u.is6, lc.TTL)
	if u.batch != nil && lc.NoGSO {
		u.batch.gso = false
	}
	return u, nil
}

// setSocketBuffers asks for socket buffers big enough that a burst of a few
// thousand datagrams is not dropped while the reader is busy. Without
// privilege the system grants at most net.core.rmem_max and wmem_max (208
// KiB by default, about 90 datagrams of 1,400 bytes); that is not an
// error, and Drops tells what it cost.
func setSocketBuffers(c *net.UDPConn) {
	const want = 8 << 20
	_ = c.SetReadBuffer(want)
	_ = c.SetWriteBuffer(want)
}

// Drops is how many datagrams the kernel dropped because this socket's
// receive buffer was full, as of the last read (Linux; 0 elsewhere).
func (u *UDPConn) Drops() uint64 {
	if u.batch == nil {
		return 0
	}
	return u.batch.drops.Load()
}

// LocalAddr implements [PacketConn].
func (u *UDPConn) LocalAddr() netip.AddrPort { return u.local }

// BatchSize implements [PacketConn].
func (u *UDPConn) BatchSize() int {
	if u.batch != nil {
		return defaultBatch
	}
	return 1
}

// Close implements [PacketConn].
func (u *UDPConn) Close() error { return u.c.Close() }

// ReadBatch implements [PacketConn]. Sources are unmapped: an IPv4 peer on a
// dual-stack socket reads as IPv4.
func (u *UDPConn) ReadBatch(msgs []Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	if u.batch != nil {
		return u.batch.read(msgs)
	}
	n, from, err := u.c.ReadFromUDPAddrPort(msgs[0].Buf)
	if err != nil {
		return 0, err
	}
	msgs[0].N, msgs[0].TTL = n, 0
	msgs[0].Addr = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	return 1, nil
}

// WriteBatch implements [PacketConn].
func (u *UDPConn) WriteBatch(msgs []Message) (int, error) {
	for i := range msgs {
		if !u.is6 && !msgs[i].Addr.Addr().Unmap().Is4() {
			return i, fmt.Errorf("udpbatch: IPv4 socket %s cannot send to %s", u.local, msgs[i].Addr)
		}
	}
	if u.batch != nil {
		u.wmu.Lock()
		defer u.wmu.Unlock()
		return u.batch.write(msgs)
	}
	for i, m := range msgs {
		if _, err := u.c.WriteToUDPAddrPort(m.Buf, u.sendAddr(m.Addr)); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

// sendAddr maps an IPv4 destination for an IPv6 (dual-stack) socket.
func (u *UDPConn) sendAddr(a netip.AddrPort) netip.AddrPort {
	if u.is6 && a.Addr().Is4() {
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr().As16()), a.Port())
	}
	return a
}

// IsClosed reports whether err means the connection was closed.
func IsClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
