//go:build unix

package relay

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestRawWriter: a write larger than the socket's buffers waits for the
// reader (the EAGAIN path) and arrives whole; a write to a peer that is
// gone fails with an error naming the write; steady writes allocate
// nothing.
func TestRawWriter(t *testing.T) {
	c, s := tcpPair(t)
	w := rawWriterFor(c)
	if _, ok := w.(*rawWriter); !ok {
		t.Fatalf("a TCP connection got a %T", w)
	}
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	got := make(chan []byte)
	go func() {
		time.Sleep(100 * time.Millisecond) // let the buffers fill
		b, _ := io.ReadAll(s)
		got <- b
	}()
	if n, err := w.Write(data); n != len(data) || err != nil {
		t.Fatalf("wrote %d of %d bytes: %v", n, len(data), err)
	}
	c.(*net.TCPConn).CloseWrite()
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("read %d bytes, not what was written", len(b))
	}

	small := []byte("x")
	c2, s2 := tcpPair(t)
	w2 := rawWriterFor(c2)
	go func() { // a reader that allocates nothing itself
		b := make([]byte, 64<<10)
		for {
			if _, err := s2.Read(b); err != nil {
				return
			}
		}
	}()
	if allocs := testing.AllocsPerRun(100, func() { w2.Write(small) }); allocs != 0 {
		t.Fatalf("%.1f allocations per raw write", allocs)
	}

	s2.(*net.TCPConn).SetLinger(0)
	s2.Close() // a reset: writes fail
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = w2.Write(small)
		time.Sleep(time.Millisecond)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "write" || !(errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("write to a reset connection: %v", err)
	}
	if rawWriterFor(io.Discard) != io.Discard {
		t.Fatal("a non-socket writer was wrapped")
	}
}
