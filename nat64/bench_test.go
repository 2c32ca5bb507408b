package nat64

import (
	"net/netip"
	"testing"

	"geneve64/nat64/udpbatch"
)

// BenchmarkServerReceive: a server's per-frame receive work for a batch of
// one client's frames (a bulk upload): parsing, the option, the peer, its
// path, and the learning switch. No system calls; b.N counts frames.
func BenchmarkServerReceive(b *testing.B) {
	e := discardEndpoint(b, Config{Mode: Server, VNI: 42, Local: netip.AddrPortFrom(idA, 6081), Remote: netip.PrefixFrom(idB, 128)})
	frame := ethFrame(2, 1, string(make([]byte, 1400)))
	in := peerPacket(e, idB, frame)
	from := netip.MustParseAddrPort("[64:ff9b::c000:201]:40000")
	const batch = 32
	msgs := make([]udpbatch.Message, batch)
	for i := range msgs {
		msgs[i] = udpbatch.Message{Buf: in, N: len(in), Addr: from}
	}
	rx := &rxState{deliver: make([][]byte, 0, batch), out: newSendBatch(batch)}
	// The local stack's MAC is learned from what it sends, as in a tunnel.
	e.SendFrames([][]byte{ethFrame(1, 2, "hello")}) // no peer yet: dropped, but learned
	drops := e.Stats().TotalDrops()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		now := e.clock()
		for j := range msgs {
			e.receive(&msgs[j], now, rx)
		}
		rx.deliver = rx.deliver[:0]
	}
	b.StopTimer()
	if d := e.Stats().TotalDrops() - drops; d != 0 || len(e.Peers()) != 1 {
		b.Fatalf("%d drops, %d peers", d, len(e.Peers()))
	}
}
