package stack

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// recycleLink is a link between two stacks that allocates nothing per
// frame: frames are copied into buffers that go round between the two
// ends, so that what a test counts is the stacks' allocations alone.
type recycleLink struct {
	full chan *[]byte
	free chan *[]byte
	done chan struct{}
	peer *Stack
}

func newRecycleLink() *recycleLink {
	l := &recycleLink{full: make(chan *[]byte, 256), free: make(chan *[]byte, 256), done: make(chan struct{})}
	for range 256 {
		b := make([]byte, 0, 1<<16)
		l.free <- &b
	}
	return l
}

func (l *recycleLink) SendFrames(frames [][]byte) (int, error) {
	for _, f := range frames {
		select {
		case b := <-l.free:
			*b = append((*b)[:0], f...)
			l.full <- b
		default: // out of buffers: dropped, as a full queue drops
		}
	}
	return len(frames), nil
}

func (l *recycleLink) run() {
	batch := make([][]byte, 1)
	for {
		select {
		case <-l.done:
			return
		case b := <-l.full:
			batch[0] = *b
			l.peer.DeliverFrames(batch)
			l.free <- b
		}
	}
}

// TestRoundTripNoAllocs: a 1-byte round trip between two netstacks, read
// and written as the relays do (WaitReadable, TryRead, Write), allocates
// nothing once the connection is up: the packet path of a request and its
// answer, ACK delay and sender included.
func TestRoundTripNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	la, lb := newRecycleLink(), newRecycleLink()
	cfg := func(addrs []netip.Prefix) Config {
		return Config{Addrs: addrs, Payload: Ethernet, MTU: 1400, Logger: logger(t),
			MAC: MACFromIdentity(addrs[0].Addr(), addrs)}
	}
	a, err := New(la, cfg(addrA))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(lb, cfg(addrB))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	la.peer, lb.peer = b, a
	go la.run()
	go lb.run()
	defer close(la.done)
	defer close(lb.done)

	serveOne(t, b, "10.42.0.1:7001", func(c net.Conn) { echo(c.(*TCPConn)) })
	nc, err := a.DialContext(ctx(t), "tcp", "10.42.0.1:7001")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := nc.(*TCPConn)
	buf := make([]byte, 1)
	round := func() {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		for {
			c.WaitReadable()
			n, err := c.TryRead(buf)
			if err != nil {
				t.Fatal(err)
			}
			if n == 1 {
				return
			}
		}
	}
	for range 200 {
		round()
	}
	if allocs := testing.AllocsPerRun(500, round); allocs >= 0.5 {
		t.Errorf("%.2f allocations per round trip", allocs)
	}
}

// TestTCPConnWriteDeadline: the allocation-free Write keeps net.Conn's
// deadline: once a write deadline has passed, writes time out.
func TestTCPConnWriteDeadline(t *testing.T) {
	a, b := pair(t, Ethernet, Config{Addrs: addrA}, Config{Addrs: addrB})
	serveOne(t, b, "10.42.0.1:7002", func(c net.Conn) { io.Copy(io.Discard, c) })
	nc, err := a.DialContext(ctx(t), "tcp", "10.42.0.1:7002")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("before")); err != nil {
		t.Fatal(err)
	}
	nc.SetWriteDeadline(time.Now().Add(-time.Second))
	_, err = nc.Write([]byte("after"))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("write after the deadline: %v, want a timeout", err)
	}
}

// echo writes back what c reads, as a relay's two halves would.
func echo(c *TCPConn) {
	buf := make([]byte, 64)
	for {
		c.WaitReadable()
		n, err := c.TryRead(buf)
		if err == io.EOF || err != nil {
			return
		}
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}
