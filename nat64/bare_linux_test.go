//go:build linux

package nat64

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"geneve64/nat64/udpbatch"
)

type countLink struct{ n atomic.Int64 }

func (c *countLink) DeliverFrames(f [][]byte) { c.n.Add(int64(len(f))) }

// bareTunnel is two symmetric endpoints over real loopback UDP (batched,
// with UDP GSO and GRO where the kernel has them): frames sent on a are
// received, checked and counted on b.
func bareTunnel(tb testing.TB, key []byte) (a, b *Endpoint, got *countLink) {
	var conns [2]udpbatch.PacketConn
	for i := range conns {
		c, err := udpbatch.ListenUDP(netip.MustParseAddrPort("[::1]:0"))
		if err != nil {
			tb.Fatal(err)
		}
		conns[i] = c
	}
	mk := func(conn udpbatch.PacketConn, local, remote netip.Addr, path netip.AddrPort) *Endpoint {
		e, err := NewEndpoint(context.Background(), Config{Mode: Symmetric, VNI: 42, Local: netip.AddrPortFrom(local, 0),
			Path: Target{Addr: path.Addr(), Port: path.Port()}, Remote: netip.PrefixFrom(remote, 128), Keepalive: -1,
			Key: key, Logger: testLogger(tb), Listen: func(netip.AddrPort) (udpbatch.PacketConn, error) { return conn, nil }})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { e.Close() })
		return e
	}
	a = mk(conns[0], idA, idB, conns[1].LocalAddr())
	b = mk(conns[1], idB, idA, conns[0].LocalAddr())
	got = &countLink{}
	a.Start(&countLink{})
	b.Start(got)
	return a, b, got
}

// TestBareTunnelAllocs: frames sent over real loopback UDP, received,
// checked and delivered, allocate nothing in steady state. AllocsPerRun
// counts every goroutine's allocations, the receive loop's included.
func TestBareTunnelAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	a, b, got := bareTunnel(t, nil)
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

// BenchmarkBareTunnel: the tunnel alone, no netstack: 1,394-byte inner
// Ethernet frames encapsulated in batches of 64, sent over loopback UDP,
// received, checked and decapsulated; with a key, signed and verified
// too. b.N counts frames sent; frames/s counts frames delivered, and
// %lost the ones the receiving socket dropped, so that a sender faster
// than its receiver shows as loss rather than as speed.
func BenchmarkBareTunnel(b *testing.B) {
	for _, bc := range []struct {
		name string
		key  []byte
	}{{"plain", nil}, {"key", testKey}} {
		b.Run(bc.name, func(b *testing.B) {
			a, _, got := bareTunnel(b, bc.key)
			frame := ethFrame(2, 1, string(make([]byte, 1394)))
			batch := make([][]byte, 64)
			for i := range batch {
				batch[i] = frame
			}
			a.SendFrames(batch) // warm up pools and buffers
			time.Sleep(20 * time.Millisecond)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			before := got.n.Load()
			b.ResetTimer()
			for sent := 0; sent < b.N; sent += len(batch) {
				a.SendFrames(batch[:min(len(batch), b.N-sent)])
			}
			// The tail still in flight: wait until all arrived or none
			// came for 10 ms.
			for last := int64(-1); ; {
				n := got.n.Load()
				if n-before >= int64(b.N) || n == last {
					break
				}
				last = n
				time.Sleep(10 * time.Millisecond)
			}
			b.StopTimer()
			delivered := got.n.Load() - before
			b.ReportMetric(float64(delivered)/b.Elapsed().Seconds(), "frames/s")
			b.ReportMetric(100*(1-float64(delivered)/float64(b.N)), "%lost")
		})
	}
}
