//go:build linux

package udpbatch

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvmmsg and sendmmsg, made here rather than through x/net's batch I/O
// for two reasons, both measured:
//   - x/net's ReadBatch allocates a net.UDPAddr for every datagram it
//     returns, and the packet path is meant to allocate nothing; headers,
//     iovecs and address storage here are allocated once.
//   - The calls are raw system calls (RawSyscall6), as gVisor's own
//     non-blocking packet I/O makes them. The socket is non-blocking, so a
//     call never waits in the kernel (Go's poller does the waiting, through
//     RawConn), and skipping the runtime's system-call bookkeeping matters:
//     every tracked call made after the process was idle wakes the
//     runtime's monitor thread, one more context switch per packet
//     exchange on a busy CPU.

// rawReader reads batches with recvmmsg.
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
	k, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.n), unix.MSG_DONTWAIT, 0, 0)
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

// rawWriter sends batches with sendmmsg: one message per slot, each with
// its own iovecs (a UDP_SEGMENT run), control message and destination.
type rawWriter struct {
	rc    syscall.RawConn
	is6   bool
	hdrs  []unix.Mmsghdr
	iovs  [][]unix.Iovec
	names []unix.RawSockaddrInet6

	send  func(fd uintptr) bool // bound once, as rawReader.recv
	n     int
	got   int
	errno syscall.Errno
}

func newRawWriter(c *net.UDPConn, is6 bool, n, iovsPerMsg int) (*rawWriter, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	w := &rawWriter{rc: rc, is6: is6, hdrs: make([]unix.Mmsghdr, n), iovs: make([][]unix.Iovec, n), names: make([]unix.RawSockaddrInet6, n)}
	for i := range w.iovs {
		w.iovs[i] = make([]unix.Iovec, 0, iovsPerMsg)
	}
	w.send = w.sendmmsg
	return w, nil
}

// set fills slot i: bufs sent as one datagram (or one UDP_SEGMENT run, as
// oob says) to addr.
func (w *rawWriter) set(i int, bufs [][]byte, oob []byte, addr netip.AddrPort) {
	iov := w.iovs[i][:0]
	for _, b := range bufs {
		v := unix.Iovec{}
		if len(b) > 0 {
			v.Base = &b[0]
			v.SetLen(len(b))
		}
		iov = append(iov, v)
	}
	w.iovs[i] = iov
	h := &w.hdrs[i].Hdr
	h.Name = (*byte)(unsafe.Pointer(&w.names[i]))
	// UDPConn.WriteBatch refuses an IPv6 peer on an IPv4 socket first;
	// should another caller not, the kernel refuses the IPv6 address with
	// an error for that message rather than As4 panicking here.
	if w.is6 || !addr.Addr().Unmap().Is4() {
		sa := &w.names[i]
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: addr.Addr().As16()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], addr.Port())
		h.Namelen = unix.SizeofSockaddrInet6
	} else {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&w.names[i]))
		*sa = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: addr.Addr().Unmap().As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], addr.Port())
		h.Namelen = unix.SizeofSockaddrInet4
	}
	h.Iov = nil
	if len(iov) > 0 {
		h.Iov = &iov[0]
	}
	h.SetIovlen(len(iov))
	h.Control = nil
	h.SetControllen(0)
	if len(oob) > 0 {
		h.Control = &oob[0]
		h.SetControllen(len(oob))
	}
	h.Flags = 0
}

func (w *rawWriter) sendmmsg(fd uintptr) bool {
	k, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[0])), uintptr(w.n), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
		return false // the send buffer is full: the poller waits
	}
	w.got, w.errno = int(k), e
	return true
}

// write sends slots [0, n) and returns how many messages went.
func (w *rawWriter) write(n int) (int, error) {
	w.n, w.got, w.errno = n, 0, 0
	err := w.rc.Write(w.send)
	// Drop the references to the callers' buffers.
	for i := 0; i < n; i++ {
		clear(w.iovs[i])
		w.hdrs[i].Hdr.Iov, w.hdrs[i].Hdr.Control = nil, nil
	}
	if err != nil {
		return 0, err
	}
	if w.errno != 0 {
		return 0, os.NewSyscallError("sendmmsg", w.errno)
	}
	return w.got, nil
}
