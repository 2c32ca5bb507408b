package socks

import (
	"net"
	"sync"
	"sync/atomic"
)

// connSet tracks a front-end's open connections so Close ends them all and
// nothing outlives the front-end.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
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
		s.conns = make(map[net.Conn]struct{})
	}
	s.conns[c] = struct{}{}
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

// closeAll closes every connection and waits for their handlers.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
