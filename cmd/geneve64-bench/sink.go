package main

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
)

// Sink modes: the first byte a benchmark connection sends says what the
// host-side sink does with it.
const (
	sinkUpload   = 'U' // read and count until EOF
	sinkDownload = 'D' // write until the peer closes
	sinkPingPong = 'P' // echo each byte
	sinkHold     = 'H' // answer one byte, then hold the connection open
)

// sink is the TCP server on the host that benchmark flows end at: the far
// site's host, reached through egress, or the kernel baseline directly.
type sink struct {
	ln       net.Listener
	received atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func startSink() (*sink, error) {
	lc := net.ListenConfig{KeepAlive: -1} // see dialSOCKS
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln, conns: make(map[net.Conn]struct{})}
	go s.serve()
	return s, nil
}

func (s *sink) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// dial connects straight to the sink over kernel loopback TCP: the
// baseline every tunnel figure is set against. No keep-alive, as for the
// clients through the tunnel (see dialSOCKS).
func (s *sink) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{KeepAlive: -1}
	return d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port())))
}

func (s *sink) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *sink) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.handle(c)
		}()
	}
}

func (s *sink) handle(c net.Conn) {
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return
	}
	switch mode[0] {
	case sinkUpload:
		buf := make([]byte, 256<<10)
		for {
			n, err := c.Read(buf)
			s.received.Add(int64(n))
			if err != nil {
				return
			}
		}
	case sinkDownload:
		buf := make([]byte, 256<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	case sinkPingPong:
		var b [1]byte
		for {
			if _, err := io.ReadFull(c, b[:]); err != nil {
				return
			}
			if _, err := c.Write(b[:]); err != nil {
				return
			}
		}
	case sinkHold:
		c.Write([]byte{1})
		io.Copy(io.Discard, c)
	}
}
