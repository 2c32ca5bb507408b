//go:build linux

package udpbatch

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux batch I/O: recvmmsg/sendmmsg (mmsg_linux.go), plus UDP segmentation
// offload both ways where the kernel has it. On send, consecutive datagrams
// for one peer of one size go out as one UDP_SEGMENT super-datagram (its
// iovecs point at the callers' buffers: no copy). On receive, UDP_GRO hands
// over coalesced super-datagrams that are split here. Over loopback the
// kernel then never segments at all: it carries 64 KiB per trip through its
// UDP stack instead of one datagram.
const (
	maxGSOSegments = 64    // the kernel's UDP_MAX_SEGMENTS
	maxGSOBytes    = 65000 // below the largest UDP payload, with headers
)

type batchIO struct {
	is6      bool
	gso, gro bool
	ttl      bool // TTLs read into Message.TTL and written from it

	// drops is the kernel's count of datagrams this socket dropped for want
	// of buffer space (SO_RXQ_OVFL), as of the last read.
	drops atomic.Uint64

	// Read side. With GRO, reads land in buffers owned here and are split
	// into pend; the next recvmmsg waits until pend is drained.
	rr      *rawReader
	rout    []rawMsg
	rcall   [][]byte // the buffers passed to one recvmmsg
	rbufs   [][]byte
	roob    [][]byte
	pend    []pending
	pendOff int

	// Write side, grouped: one message per run of same-peer datagrams.
	rw     *rawWriter
	wiov   [][][]byte
	woob   [][]byte
	wcount []int
}

type pending struct {
	b    []byte
	addr netip.AddrPort
	ttl  uint8
}

// Room for the control messages a read may carry: a GRO segment size, the
// drop counter and a TTL or hop limit, each a 32-bit value.
var readOOBLen = 3 * unix.CmsgSpace(4)

// Room for what a write may attach: a segment size and a TTL.
var writeOOBLen = unix.CmsgSpace(2) + unix.CmsgSpace(4)

func newBatchIO(c *net.UDPConn, is6, ttl bool) *batchIO {
	rr, err := newRawReader(c, defaultBatch)
	if err != nil {
		return nil
	}
	rw, err := newRawWriter(c, is6, defaultBatch, maxGSOSegments)
	if err != nil {
		return nil
	}
	b := &batchIO{
		is6:    is6,
		ttl:    ttl,
		rr:     rr,
		rw:     rw,
		rout:   make([]rawMsg, defaultBatch),
		rcall:  make([][]byte, defaultBatch),
		rbufs:  make([][]byte, defaultBatch),
		roob:   make([][]byte, defaultBatch),
		wiov:   make([][][]byte, defaultBatch),
		woob:   make([][]byte, defaultBatch),
		wcount: make([]int, defaultBatch),
	}
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			// UDP_SEGMENT exists where getsockopt knows it (Linux 4.18).
			_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
			b.gso = err == nil
			b.gro = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
			// Best effort: without it, Drops stays 0.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
			if ttl {
				_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTTL, 1)
				if is6 {
					_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1)
				}
			}
		})
	}
	for i := range b.rbufs {
		b.woob[i] = make([]byte, writeOOBLen)
		b.roob[i] = make([]byte, readOOBLen)
		if b.gro {
			b.rbufs[i] = make([]byte, MaxDatagram)
		}
	}
	return b
}

func (b *batchIO) read(msgs []Message) (int, error) {
	if !b.gro {
		return b.readPlain(msgs)
	}
	if b.pendOff == len(b.pend) {
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	k := 0
	for ; k < len(msgs) && b.pendOff < len(b.pend); k++ {
		p := b.pend[b.pendOff]
		b.pendOff++
		msgs[k].Buf, msgs[k].N, msgs[k].Addr, msgs[k].TTL = p.b, len(p.b), p.addr, p.ttl
	}
	return k, nil
}

// fill reads one batch of (possibly coalesced) datagrams into pend.
func (b *batchIO) fill() error {
	b.pend, b.pendOff = b.pend[:0], 0
	got, err := b.rr.read(b.rbufs, b.roob, b.rout)
	if err != nil {
		return err
	}
	for i := 0; i < got; i++ {
		m := &b.rout[i]
		addr := m.addr
		data := b.rbufs[i][:m.n]
		// The kernel coalesces only datagrams with equal IP headers
		// but for length, so one TTL holds for every segment.
		seg, ttl := b.control(b.roob[i][:m.oobn])
		if seg <= 0 || seg >= len(data) {
			b.pend = append(b.pend, pending{data, addr, ttl})
			continue
		}
		for off := 0; off < len(data); off += seg {
			b.pend = append(b.pend, pending{data[off:min(off+seg, len(data))], addr, ttl})
		}
	}
	return nil
}

func (b *batchIO) readPlain(msgs []Message) (int, error) {
	n := min(len(msgs), len(b.rcall))
	for i := 0; i < n; i++ {
		b.rcall[i] = msgs[i].Buf
	}
	got, err := b.rr.read(b.rcall[:n], b.roob[:n], b.rout)
	for i := 0; i < got; i++ {
		msgs[i].N = b.rout[i].n
		msgs[i].Addr = b.rout[i].addr
		_, msgs[i].TTL = b.control(b.roob[i][:b.rout[i].oobn])
	}
	return got, err
}

// control reads a received datagram's control messages: the GRO segment
// size (0: not coalesced) and the TTL or hop limit (0: not asked for),
// and it records the socket's drop count.
func (b *batchIO) control(oob []byte) (seg int, ttl uint8) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.CmsgLen(0) || l > len(oob) {
			break
		}
		if l >= unix.CmsgLen(4) {
			v := binary.NativeEndian.Uint32(oob[unix.CmsgLen(0):])
			switch {
			case h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO:
				seg = int(v)
			case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_RXQ_OVFL:
				b.drops.Store(uint64(v))
			case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TTL,
				h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_HOPLIMIT:
				ttl = uint8(v)
			}
		}
		oob = oob[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(oob)):]
	}
	return seg, ttl
}

// writeControl fills oob with what one sendmmsg slot attaches: a
// UDP_SEGMENT size when it carries a run of datagrams, and a TTL or hop
// limit when the caller set one.
func (b *batchIO) writeControl(oob []byte, run, size int, ttl uint8, to netip.AddrPort) []byte {
	n := 0
	if run > 1 {
		n = len(putCmsg16(oob, unix.IPPROTO_UDP, unix.UDP_SEGMENT, uint16(size)))
	}
	if ttl != 0 && b.ttl {
		if to.Addr().Unmap().Is4() {
			n += len(putCmsg32(oob[n:], unix.IPPROTO_IP, unix.IP_TTL, uint32(ttl)))
		} else {
			n += len(putCmsg32(oob[n:], unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, uint32(ttl)))
		}
	}
	return oob[:n]
}

func (b *batchIO) write(msgs []Message) (int, error) {
	sent := 0
	for sent < len(msgs) {
		g := b.group(msgs[sent:])
		got, err := b.rw.write(g)
		if err != nil && b.gso && got == 0 && b.wcount[0] > 1 &&
			(errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)) {
			b.gso = false // the path cannot segment: send datagrams one by one
			continue
		}
		for k := 0; k < got; k++ {
			sent += b.wcount[k]
		}
		if err != nil {
			return sent, err
		}
		if got == 0 {
			break
		}
	}
	return sent, nil
}

// group packs msgs into the writer's slots, one message per run of datagrams to one
// peer whose sizes are equal (the last may be shorter), and returns how
// many messages it made.
func (b *batchIO) group(msgs []Message) int {
	g := 0
	for i := 0; i < len(msgs) && g < len(b.wiov); g++ {
		size := len(msgs[i].Buf)
		j, total := i+1, size
		if b.gso && size > 0 {
			for j < len(msgs) && j-i < maxGSOSegments && msgs[j].Addr == msgs[i].Addr && msgs[j].TTL == msgs[i].TTL && total+len(msgs[j].Buf) <= maxGSOBytes {
				l := len(msgs[j].Buf)
				if l > size || l == 0 {
					break
				}
				total += l
				j++
				if l < size {
					break // only the last segment may be shorter
				}
			}
		}
		iov := b.wiov[g][:0]
		for k := i; k < j; k++ {
			iov = append(iov, msgs[k].Buf)
		}
		b.wiov[g] = iov
		oob := b.writeControl(b.woob[g], j-i, size, msgs[i].TTL, msgs[i].Addr)
		b.rw.set(g, iov, oob, msgs[i].Addr)
		clear(iov) // set took what it needs
		b.wcount[g] = j - i
		i = j
	}
	return g
}
