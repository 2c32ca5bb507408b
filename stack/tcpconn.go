package stack

import (
	"io"
	"net"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// TCPConn is a TCP connection inside the tunnel: a gonet.TCPConn that can
// also read without waiting, and wait for data without a buffer. Relays use
// that to hold no buffer on an idle connection (see package relay).
type TCPConn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
	wq *waiter.Queue
}

func newTCPConn(wq *waiter.Queue, ep tcpip.Endpoint) *TCPConn {
	return &TCPConn{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep, wq: wq}
}

// TryRead reads what has arrived without waiting for more. It returns 0
// and a nil error when nothing has, and io.EOF once the peer has closed
// its side and everything was read.
func (c *TCPConn) TryRead(b []byte) (int, error) {
	w := tcpip.SliceWriter(b)
	res, err := c.ep.Read(&w, tcpip.ReadOptions{})
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
// connection closed meanwhile is readable: its reads fail at once.
func (c *TCPConn) WaitReadable() {
	if c.Readable() {
		return
	}
	entry, ch := waiter.NewChannelEntry(waiter.ReadableEvents)
	c.wq.EventRegister(&entry)
	defer c.wq.EventUnregister(&entry)
	for !c.Readable() {
		<-ch
	}
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
