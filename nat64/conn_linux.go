//go:build linux

package nat64

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// batchIO holds recvmmsg/sendmmsg state: x/net's ipv4 and ipv6 Message
// types are the same type, so one scratch array serves both families.
type batchIO struct {
	is6   bool
	p4    *ipv4.PacketConn
	p6    *ipv6.PacketConn
	rmsgs []ipv6.Message
	rbufs [][1][]byte
	wmsgs []ipv6.Message
	wbufs [][1][]byte
	waddr []net.UDPAddr // reused destination addresses: no allocation per send
	wip   [][16]byte
}

func newBatchIO(c *net.UDPConn, is6 bool) *batchIO {
	b := &batchIO{
		is6:   is6,
		rmsgs: make([]ipv6.Message, defaultBatch),
		rbufs: make([][1][]byte, defaultBatch),
		wmsgs: make([]ipv6.Message, defaultBatch),
		wbufs: make([][1][]byte, defaultBatch),
		waddr: make([]net.UDPAddr, defaultBatch),
		wip:   make([][16]byte, defaultBatch),
	}
	if is6 {
		b.p6 = ipv6.NewPacketConn(c)
	} else {
		b.p4 = ipv4.NewPacketConn(c)
	}
	return b
}

func (b *batchIO) read(msgs []Message) (int, error) {
	n := min(len(msgs), len(b.rmsgs))
	for i := 0; i < n; i++ {
		b.rbufs[i][0] = msgs[i].Buf
		b.rmsgs[i].Buffers = b.rbufs[i][:]
	}
	var got int
	var err error
	if b.is6 {
		got, err = b.p6.ReadBatch(b.rmsgs[:n], 0)
	} else {
		got, err = b.p4.ReadBatch(b.rmsgs[:n], 0)
	}
	for i := 0; i < got; i++ {
		msgs[i].N = b.rmsgs[i].N
		if ua, ok := b.rmsgs[i].Addr.(*net.UDPAddr); ok {
			ap := ua.AddrPort()
			msgs[i].Addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	return got, err
}

func (b *batchIO) write(msgs []Message) (int, error) {
	sent := 0
	for sent < len(msgs) {
		n := min(len(msgs)-sent, len(b.wmsgs))
		for i := 0; i < n; i++ {
			m := &msgs[sent+i]
			b.wbufs[i][0] = m.Buf
			b.wmsgs[i].Buffers = b.wbufs[i][:]
			ua := &b.waddr[i]
			a := m.Addr.Addr()
			if b.is6 {
				b.wip[i] = a.As16()
				ua.IP = b.wip[i][:]
			} else {
				a4 := a.Unmap().As4()
				copy(b.wip[i][:4], a4[:])
				ua.IP = b.wip[i][:4]
			}
			ua.Port = int(m.Addr.Port())
			ua.Zone = ""
			b.wmsgs[i].Addr = ua
		}
		var got int
		var err error
		if b.is6 {
			got, err = b.p6.WriteBatch(b.wmsgs[:n], 0)
		} else {
			got, err = b.p4.WriteBatch(b.wmsgs[:n], 0)
		}
		sent += got
		if err != nil {
			return sent, err
		}
		if got == 0 {
			break
		}
	}
	return sent, nil
}
