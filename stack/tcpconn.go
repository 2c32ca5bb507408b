package stack

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// TCPConn is a TCP connection inside the tunnel: a gonet.TCPConn that can
// also read without waiting, and wait for data without a buffer. Relays use
// that to hold no buffer on an idle connection (see package relay).
//
// TryRead, WaitReadable and Write allocate nothing: gonet's Write, and the
// obvious way to read and wait, each put a reader, a writer or a waiter
// entry on the heap per call, eight allocations per round trip of a relay.
type TCPConn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
	wq *waiter.Queue

	// The reading side: one reader at a time (a relay's goroutine).
	rw        tcpip.SliceWriter
	readEntry waiter.Entry
	readable  chan struct{}

	wmu sync.Mutex // one write at a time; guards wr
	wr  bytes.Reader
	// deadline is set once a write deadline has been set: writes then go
	// through gonet, which keeps it.
	deadline atomic.Bool
}

func newTCPConn(wq *waiter.Queue, ep tcpip.Endpoint) *TCPConn {
	c := &TCPConn{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep, wq: wq}
	c.readEntry, c.readable = waiter.NewChannelEntry(waiter.ReadableEvents)
	return c
}

// TryRead reads what has arrived without waiting for more. It returns 0
// and a nil error when nothing has, and io.EOF once the peer has closed
// its side and everything was read. One goroutine reads at a time.
func (c *TCPConn) TryRead(b []byte) (int, error) {
	c.rw = tcpip.SliceWriter(b)
	res, err := c.ep.Read(&c.rw, tcpip.ReadOptions{})
	c.rw = nil
	switch err.(type) {
	case nil:
		// As gonet's Read does: what the application reads drives the
		// receive buffer's auto-tuning, and with it the window.
		c.ep.ModerateRecvBuf(res.Count)
		return res.Count, nil
	case *tcpip.ErrWouldBlock:
		return 0, nil
	case *tcpip.ErrClosedForReceive:
		return 0, io.EOF
	default:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errnoOf(err)}
	}
}

// Readable reports whether a read would not wait: data, end of stream or
// an error are there.
func (c *TCPConn) Readable() bool {
	return c.ep.Readiness(waiter.ReadableEvents) != 0
}

// WaitReadable returns once a read would not wait (see Readable). A
// connection closed meanwhile is readable: its reads fail at once. One
// goroutine waits at a time, the one that reads.
func (c *TCPConn) WaitReadable() {
	if c.Readable() {
		return
	}
	c.wq.EventRegister(&c.readEntry)
	defer c.wq.EventUnregister(&c.readEntry)
	for !c.Readable() {
		<-c.readable
	}
}

// Write implements net.Conn. What the send buffer takes at once is
// written here without allocating; the rest, and every write once a
// write deadline was set, goes through gonet's Write, which waits for
// room and keeps the deadline. Writes are whole, one at a time, as on a
// kernel socket (gonet's alone could interleave two that each wait).
func (c *TCPConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.deadline.Load() || len(b) == 0 {
		return c.TCPConn.Write(b)
	}
	c.wr.Reset(b)
	n, err := c.ep.Write(&c.wr, tcpip.WriteOptions{})
	c.wr.Reset(nil)
	if err == nil && int(n) == len(b) {
		return len(b), nil
	}
	// Room for part of it, for none, or an error: gonet's Write waits
	// for room, and meets and words the error as it always has.
	m, werr := c.TCPConn.Write(b[n:])
	return int(n) + m, werr
}

// SetDeadline implements net.Conn.
func (c *TCPConn) SetDeadline(t time.Time) error {
	c.deadline.Store(true)
	return c.TCPConn.SetDeadline(t)
}

// SetWriteDeadline implements net.Conn.
func (c *TCPConn) SetWriteDeadline(t time.Time) error {
	c.deadline.Store(true)
	return c.TCPConn.SetWriteDeadline(t)
}

// tcpListener accepts TCPConns: gonet's listener for everything but Accept,
// whose connections would be plain gonet ones.
type tcpListener struct {
	*gonet.TCPListener
	ep     tcpip.Endpoint
	wq     *waiter.Queue
	closed chan struct{}
	once   sync.Once
}

// listenBacklog is Linux's usual somaxconn, as gonet uses.
const listenBacklog = 4096

func (st *Stack) listenTCP(full tcpip.FullAddress, proto tcpip.NetworkProtocolNumber) (*tcpListener, error) {
	wq := new(waiter.Queue)
	ep, terr := st.s.NewEndpoint(tcp.ProtocolNumber, proto, wq)
	if terr != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: errnoOf(terr)}
	}
	addr := tcpAddr(full)
	if terr := ep.Bind(full); terr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "bind", Net: "tcp", Addr: addr, Err: errnoOf(terr)}
	}
	if terr := ep.Listen(listenBacklog); terr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: addr, Err: errnoOf(terr)}
	}
	return &tcpListener{TCPListener: gonet.NewTCPListener(st.s, wq, ep), ep: ep, wq: wq, closed: make(chan struct{})}, nil
}

// Accept implements net.Listener, returning a *TCPConn.
func (l *tcpListener) Accept() (net.Conn, error) {
	entry, ready := waiter.NewChannelEntry(waiter.ReadableEvents)
	l.wq.EventRegister(&entry)
	defer l.wq.EventUnregister(&entry)
	for {
		ep, wq, terr := l.ep.Accept(nil)
		if terr == nil {
			return newTCPConn(wq, ep), nil
		}
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			err := errnoOf(terr)
			select {
			case <-l.closed:
				err = net.ErrClosed
			default:
			}
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: err}
		}
		select {
		case <-l.closed:
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
		case <-ready:
		}
	}
}

// Close implements net.Listener; a waiting Accept returns net.ErrClosed.
func (l *tcpListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.TCPListener.Close()
}
