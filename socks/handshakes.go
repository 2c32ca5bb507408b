package socks

import (
	"container/list"
	"net"
	"sync"
	"time"
)

// handshakes admits SOCKS5 clients in two stages. A connection in its
// handshake (greeting, authentication, request) has HandshakeTimeout to
// finish it and is one of at most MaxHandshakes such connections; when
// they are all taken, the oldest is closed to make room, so connections
// that never send a byte cannot keep real clients out. Only a connection
// that finished its handshake counts against MaxConns.
type handshakes struct {
	max     int
	timeout time.Duration

	mu          sync.Mutex
	pending     *list.List // of net.Conn, oldest first
	byConn      map[net.Conn]*list.Element
	established map[net.Conn]struct{} // past their handshake
}

func newHandshakes(max int, timeout time.Duration) *handshakes {
	return &handshakes{max: max, timeout: timeout, pending: list.New(),
		byConn: make(map[net.Conn]*list.Element), established: make(map[net.Conn]struct{})}
}

// start admits c to its handshake, closing the oldest pending connection
// when there is no room, and sets c's deadline.
func (h *handshakes) start(c net.Conn) {
	c.SetDeadline(time.Now().Add(h.timeout))
	h.mu.Lock()
	var oldest net.Conn
	if h.pending.Len() >= h.max {
		e := h.pending.Front()
		oldest = e.Value.(net.Conn)
		h.pending.Remove(e)
		delete(h.byConn, oldest)
	}
	h.byConn[c] = h.pending.PushBack(c)
	h.mu.Unlock()
	if oldest != nil {
		oldest.Close()
	}
}

// finish ends c's handshake: it reports whether c may go on, that is
// whether fewer than maxConns connections are established, and if so
// counts it among them and clears its deadline.
func (h *handshakes) finish(c net.Conn, maxConns int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.byConn[c]
	if !ok {
		return false // evicted meanwhile
	}
	h.pending.Remove(e)
	delete(h.byConn, c)
	if len(h.established) >= maxConns {
		return false
	}
	h.established[c] = struct{}{}
	c.SetDeadline(time.Time{})
	return true
}

// end forgets c when its handler returns.
func (h *handshakes) end(c net.Conn) {
	h.mu.Lock()
	if e, ok := h.byConn[c]; ok {
		h.pending.Remove(e)
		delete(h.byConn, c)
	}
	delete(h.established, c)
	h.mu.Unlock()
}

// counts returns the connections in their handshake and past it.
func (h *handshakes) counts() (pending, established int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pending.Len(), len(h.established)
}
