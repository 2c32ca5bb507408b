package nat64

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"geneve64/nat64/udpbatch"
)

// BenchmarkServerPeers: a server's cost as its clients grow to 1, 100 and
// 1,000 (identities with their own paths and MACs; the socket discards).
// ns/op is the receive work per frame a client sends to another client
// (parse, option, peer, path, switch, queued for the other); B/peer the
// heap each proven peer with a learned MAC holds; ns/peer/tick the
// maintenance pass (keepalives due, expiry) per peer; and the keepalives
// themselves are one 8-byte OAM datagram per peer per keepalive interval,
// whatever the count.
func BenchmarkServerPeers(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			e := discardEndpoint(b, Config{Mode: Server, VNI: 42, Local: netip.AddrPortFrom(idA, 6081),
				Remote: netip.MustParsePrefix("fdd9:f2f4:ed01::/64"), MaxPeers: 2 * n, Keepalive: 25 * time.Second})
			rx := &rxState{deliver: make([][]byte, 0, 64), out: newSendBatch(64)}
			id := func(i int) netip.Addr {
				a := netip.MustParseAddr("fdd9:f2f4:ed01::").As16()
				a[14], a[15] = byte((i+1)>>8), byte(i+1)
				return netip.AddrFrom16(a)
			}
			from := func(i int) netip.AddrPort {
				return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), uint16(40000+i))
			}
			// Client i's MAC is 02:00:00:00:(i>>8):(i&255) with 0x02
			// in the last-but-one byte to keep clear of ethFrame's.
			frame := func(dst, src int) []byte {
				f := ethFrame(0, 0, string(make([]byte, 1400)))
				f[4], f[5] = 0x40|byte(dst>>8), byte(dst)
				f[10], f[11] = 0x40|byte(src>>8), byte(src)
				return f
			}
			var ms0, ms1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms0)
			now := e.clock()
			msgs := make([]udpbatch.Message, n)
			for i := range n {
				// Each client's first frame (to itself: only its MAC is
				// learned) makes its peer; its path is then proven.
				pkt := peerPacket(e, id(i), frame(i, i))
				m := udpbatch.Message{Buf: pkt, N: len(pkt), Addr: from(i)}
				rx.startBatch()
				e.receive(&m, now, rx)
				e.flush(rx.out)
				// Every client then sends to the next one.
				pkt = peerPacket(e, id(i), frame((i+1)%n, i))
				msgs[i] = udpbatch.Message{Buf: pkt, N: len(pkt), Addr: from(i)}
			}
			for _, p := range e.peerList() { // as if each answered its challenge
				if c := p.candidate.Load(); c != nil {
					e.setPath(p, c.path, now)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&ms1)
			if len(e.Peers()) != n {
				b.Fatalf("%d peers, want %d", len(e.Peers()), n)
			}
			perPeer := float64(ms1.HeapAlloc-ms0.HeapAlloc) / float64(n)
			drops := e.Stats().TotalDrops()
			b.ResetTimer()
			for k := 0; k < b.N; k++ {
				if k%64 == 0 {
					e.flush(rx.out)
					rx.startBatch()
				}
				e.receive(&msgs[k%n], now, rx)
			}
			e.flush(rx.out)
			b.StopTimer()
			if d := e.Stats().TotalDrops() - drops; d != 0 {
				b.Fatalf("%d drops", d)
			}
			// Maintenance passes, every peer due for a keepalive.
			const passes = 50
			tick := int64(5 * time.Second)
			t0 := time.Now()
			for j := range passes {
				e.maintain(now + int64(j+1)*tick)
				for _, p := range e.peerList() {
					p.lastHeard.Store(now + int64(j+1)*tick) // they answered
				}
			}
			perTick := float64(time.Since(t0).Nanoseconds()) / passes / float64(n)
			b.ReportMetric(perPeer, "B/peer")
			b.ReportMetric(perTick, "ns/peer/tick")
		})
	}
}
