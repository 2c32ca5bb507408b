package stack

import (
	"io"
	"testing"
)

// BenchmarkTransfer: one TCP stream between two netstacks over an
// in-memory link that delivers batches, as the tunnel's receive loop does.
// It measures, per byte, what the tunnel's netstack costs on both sides:
// segmentation into frames (gso.go), coalescing and injection on receipt
// (gro.go, link.go) and gVisor's TCP, with no system calls in between.
func BenchmarkTransfer(b *testing.B) {
	a, s, _, _ := pairLinks(b, Ethernet, Config{Addrs: addrA}, Config{Addrs: addrB})
	ln, err := s.Listen("tcp", "10.42.0.1:7000")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan int64)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		done <- n
	}()
	c, err := a.DialContext(ctx(b), "tcp", "10.42.0.1:7000")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	if n := <-done; n != int64(b.N*len(buf)) {
		b.Fatalf("%d of %d bytes arrived", n, b.N*len(buf))
	}
}
