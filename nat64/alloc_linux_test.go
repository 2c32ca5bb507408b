//go:build linux

package nat64

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

type countLink struct{ n atomic.Int64 }

func (c *countLink) DeliverFrames(f [][]byte) { c.n.Add(int64(len(f))) }

// TestBareTunnelAllocs: frames sent over real loopback UDP (batched, with
// UDP GSO and GRO where the kernel has them), received, checked and
// delivered, allocate nothing in steady state. AllocsPerRun counts every
// goroutine's allocations, the receive loop's included.
func TestBareTunnelAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	ca, err := ListenUDP(netip.MustParseAddrPort("[::1]:0"))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := ListenUDP(netip.MustParseAddrPort("[::1]:0"))
	if err != nil {
		t.Fatal(err)
	}
	mk := func(conn PacketConn, local, remote netip.Addr, path netip.AddrPort) *Endpoint {
		e, err := NewEndpoint(context.Background(), Config{Mode: Symmetric, VNI: 42, Local: netip.AddrPortFrom(local, 0),
			Path: Target{Addr: path.Addr(), Port: path.Port()}, Remote: netip.PrefixFrom(remote, 128), Keepalive: -1,
			Logger: testLogger(t), Listen: func(netip.AddrPort) (PacketConn, error) { return conn, nil }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	a := mk(ca, idA, idB, cb.LocalAddr())
	b := mk(cb, idB, idA, ca.LocalAddr())
	var got countLink
	a.Start(&countLink{})
	b.Start(&got)
	frame := ethFrame(2, 1, string(make([]byte, 1380)))
	batch := make([][]byte, 32)
	for i := range batch {
		batch[i] = frame
	}
	send := func() {
		want := got.n.Load() + int64(len(batch))
		a.SendFrames(batch)
		deadline := time.Now().Add(2 * time.Second)
		for got.n.Load() < want && time.Now().Before(deadline) {
			time.Sleep(50 * time.Microsecond)
		}
	}
	for i := 0; i < 20; i++ {
		send() // warm up pools, buffers and the poller
	}
	allocs := testing.AllocsPerRun(200, send)
	if perFrame := allocs / float64(len(batch)); perFrame > 0.01 {
		t.Fatalf("%.3f allocations per frame (%v per batch of %d)", perFrame, allocs, len(batch))
	}
	if b.Stats().TotalDrops() != 0 {
		t.Fatalf("%d drops", b.Stats().TotalDrops())
	}
}
