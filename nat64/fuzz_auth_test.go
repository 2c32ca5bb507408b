package nat64

import (
	"net/netip"
	"testing"

	"geneve64/geneve"
	"geneve64/nat64/udpbatch"
)

// FuzzReceiveAuthenticated feeds any packet to an authenticated endpoint's
// receive path: it never panics, and nothing a fuzzer makes up without the
// key is ever delivered or creates a peer.
func FuzzReceiveAuthenticated(f *testing.F) {
	// The seeds are well formed but unsigned: the fuzzer does not have the key.
	opts, _ := AppendOption(nil, Endpoints{Src: idClient, Dst: idServer})
	opts = appendAuthOption(opts)
	pkt, _ := (&geneve.Header{Protocol: geneve.ProtocolEthernet, VNI: 7, OptionBytes: opts}).Append(nil)
	pkt = append(pkt, ethFrame(2, 1, "seed")...)
	f.Add(pkt)
	f.Add(pkt[:50])
	f.Add([]byte{0, 0, 0x65, 0x58, 0, 0, 7, 0})
	e := discardEndpoint(f, Config{Mode: Server, VNI: 7, Local: netip.AddrPortFrom(idServer, 0), Key: testKey,
		Remote: netip.MustParsePrefix("fdd9:f2f4:ed01::/64")})
	rx := &rxState{out: newSendBatch(8)}
	from := netip.MustParseAddrPort("[64:ff9b::c000:201]:40000")
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > udpbatch.MaxDatagram {
			return
		}
		buf := append([]byte(nil), b...)
		m := udpbatch.Message{Buf: buf, N: len(buf), Addr: from}
		rx.startBatch()
		e.receive(&m, e.clock(), rx)
		if len(rx.deliver) != 0 || len(e.Peers()) != 0 {
			t.Fatalf("a made-up packet was delivered or made a peer: %x", b)
		}
		rx.out.n = 0
	})
}
