package relay

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// tcpPair returns both ends of a TCP connection over loopback.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// TestStream: data both ways over real TCP connections (read through
// their RawConns), each end's close passed on as a half-close, and the
// relay ends when both directions did.
func TestStream(t *testing.T) {
	client, a := tcpPair(t)
	b, server := tcpPair(t)
	done := make(chan [2]int64)
	go func() { x, y := Stream(a, b); done <- [2]int64{x, y} }()

	up := make([]byte, 3<<20)
	for i := range up {
		up[i] = byte(rand.Uint32())
	}
	down := bytes.Repeat([]byte("down"), 100000)
	go func() {
		for rest := up; len(rest) > 0; { // writes of every size, with pauses
			n := min(len(rest), 1+rand.IntN(200000))
			client.Write(rest[:n])
			rest = rest[n:]
			if rand.IntN(10) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		client.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(server)
	if err != nil || !bytes.Equal(got, up) {
		t.Fatalf("server read %d of %d bytes (%v)", len(got), len(up), err)
	}
	server.Write(down)
	server.Close()
	got, err = io.ReadAll(client)
	if err != nil || !bytes.Equal(got, down) {
		t.Fatalf("client read %d bytes (%v)", len(got), err)
	}
	select {
	case n := <-done:
		if n[0] != int64(len(up)) || n[1] != int64(len(down)) {
			t.Fatalf("relay counted %v", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not end")
	}
}

// TestStreamCloseEnds: closing one relayed connection under a waiting
// relay ends it.
func TestStreamCloseEnds(t *testing.T) {
	_, a := tcpPair(t)
	b, _ := tcpPair(t)
	done := make(chan struct{})
	go func() { Stream(a, b); close(done) }()
	time.Sleep(20 * time.Millisecond)
	a.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("relay still waiting after its connection closed")
	}
}

// fakeWaiter is a Waiter fed by the test from another goroutine.
type fakeWaiter struct {
	net.Conn
	mu    sync.Mutex
	cond  *sync.Cond
	buf   []byte
	eof   bool
	waits int
}

func newFakeWaiter() *fakeWaiter {
	f := &fakeWaiter{}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *fakeWaiter) push(b []byte, eof bool) {
	f.mu.Lock()
	f.buf = append(f.buf, b...)
	f.eof = f.eof || eof
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *fakeWaiter) TryRead(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.buf) == 0 {
		if f.eof {
			return 0, io.EOF
		}
		return 0, nil
	}
	n := copy(b, f.buf)
	f.buf = f.buf[n:]
	return n, nil
}

func (f *fakeWaiter) WaitReadable() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waits++
	for len(f.buf) == 0 && !f.eof {
		f.cond.Wait()
	}
}

// TestCopyWaiter: a Waiter's bursts arrive whole and in order, and the
// copy ends at its end of stream.
func TestCopyWaiter(t *testing.T) {
	src := newFakeWaiter()
	var want []byte
	go func() {
		for i := 0; i < 300; i++ {
			b := bytes.Repeat([]byte{byte(i)}, 1+rand.IntN(100000))
			want = append(want, b...)
			src.push(b, i == 299)
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	var out bytes.Buffer
	n, err := copyWaiter(&out, src)
	if err != nil || n != int64(len(want)) || !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("copied %d of %d bytes (%v)", n, len(want), err)
	}
	if src.waits < 2 {
		t.Fatalf("waited %d times: the copy never waited for data", src.waits)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestCopyErrors(t *testing.T) {
	src := newFakeWaiter()
	src.push([]byte("data"), false)
	if _, err := copyWaiter(failingWriter{}, src); err != io.ErrClosedPipe {
		t.Fatalf("waiter copy: %v", err)
	}
	if runtime.GOOS == "windows" {
		return // copyRaw is Unix's
	}
	c, s := tcpPair(t)
	c.Write([]byte("data"))
	if _, err := copyRaw(failingWriter{}, s); err != io.ErrClosedPipe {
		t.Fatalf("raw copy: %v", err)
	}
	if _, err := copyRaw(io.Discard, fakeWaiter{}.Conn); err != errNotRaw {
		t.Fatalf("raw copy of a non-socket: %v", err)
	}
}
