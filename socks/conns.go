package socks

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// connSet tracks a front-end's open connections so Close ends them all and
// nothing outlives the front-end. Each client connection may carry the far
// side it is relayed to: closing only the client would not wake a relay
// blocked writing to a far side that stopped reading.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]io.Closer
	closed bool
	wg     sync.WaitGroup
	active atomic.Int64
	total  atomic.Uint64
}

// add registers c and reports false (closing c) once the set is closed.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	if s.conns == nil {
		s.conns = make(map[net.Conn]io.Closer)
	}
	s.conns[c] = nil
	s.wg.Add(1)
	s.active.Add(1)
	s.total.Add(1)
	return true
}

func (s *connSet) done(c net.Conn) {
	s.mu.Lock()
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		s.active.Add(-1)
		s.wg.Done()
	}
	s.mu.Unlock()
}

// attach records far as the other side of c's relay, closed with c by
// closeAll. It reports false, closing far, once the set is closed.
func (s *connSet) attach(c net.Conn, far io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok || s.closed {
		far.Close()
		return false
	}
	s.conns[c] = far
	return true
}

// closeAll closes every connection and its far side, and waits for their
// handlers.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	for c, far := range s.conns {
		c.Close()
		if far != nil {
			far.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}
