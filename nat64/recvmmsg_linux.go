//go:build linux

package nat64

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawReader reads batches with recvmmsg itself: x/net's ReadBatch allocates
// a net.UDPAddr for every datagram it returns, and the receive path is
// meant to allocate nothing. Headers, iovecs and address storage are
// allocated once; Go's poller still does the waiting (RawConn.Read).
type rawReader struct {
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for IPv4 addresses too

	// The function RawConn.Read calls, bound once: a closure made per read
	// would be an allocation per read. Its arguments and results are here.
	recv  func(fd uintptr) bool
	n     int
	got   int
	errno syscall.Errno
}

// rawMsg is what one recvmmsg slot received.
type rawMsg struct {
	n, oobn int
	addr    netip.AddrPort
}

func newRawReader(c *net.UDPConn, n int) (*rawReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &rawReader{rc: rc, hdrs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, n), names: make([]unix.RawSockaddrInet6, n)}
	r.recv = r.recvmmsg
	return r, nil
}

func (r *rawReader) recvmmsg(fd uintptr) bool {
	k, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.n), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
		return false // not ready: the poller waits and calls again
	}
	r.got, r.errno = int(k), e
	return true
}

// read receives up to len(bufs) datagrams, each into bufs[i] with its
// control messages in oobs[i] (may be nil), and describes them in out.
func (r *rawReader) read(bufs, oobs [][]byte, out []rawMsg) (int, error) {
	n := min(len(bufs), len(r.hdrs), len(out))
	for i := 0; i < n; i++ {
		r.iovs[i].Base = &bufs[i][0]
		r.iovs[i].SetLen(len(bufs[i]))
		h := &r.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Control = nil
		h.SetControllen(0)
		if i < len(oobs) && len(oobs[i]) > 0 {
			h.Control = &oobs[i][0]
			h.SetControllen(len(oobs[i]))
		}
		h.Flags = 0
	}
	r.n, r.got, r.errno = n, 0, 0
	if err := r.rc.Read(r.recv); err != nil {
		return 0, err
	}
	got := r.got
	if r.errno != 0 {
		return 0, r.errno
	}
	for i := 0; i < got; i++ {
		out[i] = rawMsg{n: int(r.hdrs[i].Len), oobn: int(r.hdrs[i].Hdr.Controllen), addr: sockaddrToAddrPort(&r.names[i])}
	}
	return got, nil
}

func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	return netip.AddrPort{}
}
