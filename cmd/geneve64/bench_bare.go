package main

import (
	"context"
	"log/slog"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"geneve64/nat64"
)

// countingLink counts the frames an endpoint delivers.
type countingLink struct{ frames atomic.Int64 }

func (c *countingLink) DeliverFrames(f [][]byte) { c.frames.Add(int64(len(f))) }

// bareTunnel measures the tunnel alone: one endpoint encapsulates 1,394-byte
// Ethernet frames in batches and sends them over loopback UDP, the other
// receives, checks and decapsulates them. It returns delivered frames per
// second and heap allocations per frame (both endpoints together). With a
// key, every frame is signed and verified.
func bareTunnel(o benchOpts, key []byte) (framesPerSec, allocsPerFrame float64) {
	quiet := slog.New(slog.DiscardHandler)
	la, lb := netip.MustParseAddr("2001:db8:a::1"), netip.MustParseAddr("2001:db8:b::1")
	ca, err := nat64.ListenUDP(netip.MustParseAddrPort("[::1]:0"))
	if err != nil {
		return 0, 0
	}
	cb, err := nat64.ListenUDP(netip.MustParseAddrPort("[::1]:0"))
	if err != nil {
		ca.Close()
		return 0, 0
	}
	mk := func(conn nat64.PacketConn, local, remote netip.Addr, path netip.AddrPort) *nat64.Endpoint {
		e, err := nat64.NewEndpoint(context.Background(), nat64.Config{Mode: nat64.Symmetric, VNI: 42,
			Local: netip.AddrPortFrom(local, 0), Path: nat64.Target{Addr: path.Addr(), Port: path.Port()},
			Remote: netip.PrefixFrom(remote, 128), Keepalive: -1, Logger: quiet, Key: key,
			Listen: func(netip.AddrPort) (nat64.PacketConn, error) { return conn, nil }})
		if err != nil {
			panic(err)
		}
		return e
	}
	a := mk(ca, la, lb, cb.LocalAddr())
	b := mk(cb, lb, la, ca.LocalAddr())
	defer a.Close()
	defer b.Close()
	var sink countingLink
	a.Start(&countingLink{})
	b.Start(&sink)

	frame := make([]byte, 1394+14)
	frame[0], frame[6] = 0x02, 0x02
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = frame
	}
	a.SendFrames(batch) // warm up pools and buffers
	time.Sleep(50 * time.Millisecond)

	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	before := sink.frames.Load()
	begin := time.Now()
	d := o.duration
	for time.Since(begin) < d {
		a.SendFrames(batch)
	}
	time.Sleep(20 * time.Millisecond) // let the last datagrams arrive
	got := sink.frames.Load() - before
	elapsed := time.Since(begin)
	runtime.ReadMemStats(&ms1)
	if got == 0 {
		return 0, 0
	}
	return float64(got) / elapsed.Seconds(), float64(ms1.Mallocs-ms0.Mallocs) / float64(got)
}
