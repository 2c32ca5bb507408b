package relay

import (
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// Datagrams relays datagrams between an inner and an outer packet
// connection, each already connected to its one peer, until neither has
// carried a datagram for idle. Then it closes both.
func Datagrams(a, b net.Conn, idle time.Duration) {
	var last atomic.Int64 // when either direction last carried a datagram
	last.Store(time.Now().UnixNano())
	copyDatagrams := func(dst, src net.Conn) {
		buf := make([]byte, 65535)
		for {
			src.SetReadDeadline(time.Now().Add(idle))
			n, err := src.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < idle {
					continue // the other direction is busy: keep the flow
				}
				dst.Close()
				src.Close()
				return
			}
			last.Store(time.Now().UnixNano())
			if _, err := dst.Write(buf[:n]); err != nil {
				continue // a lost datagram is UDP's to lose
			}
		}
	}
	done := make(chan struct{})
	go func() { copyDatagrams(a, b); close(done) }()
	copyDatagrams(b, a)
	<-done
}
