// Package relay copies between two connections with proper half-close. It
// is its own package because both the netstack's egress (package stack) and
// the front-ends (package socks) need exactly this, and neither should
// import the other for it.
package relay

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// closeWriter is a connection that can shut down its sending half.
type closeWriter interface{ CloseWrite() error }

// bufPool holds copy buffers: 64 KiB moves a TCP window's worth per call.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// Stream copies a→b and b→a until both directions end, passing on each
// end-of-stream as a half-close (CloseWrite) where the connection supports
// it, then closes both. It returns the bytes copied each way.
func Stream(a, b net.Conn) (aToB, bToA int64) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		bToA = pipe(a, b)
	}()
	aToB = pipe(b, a)
	wg.Wait()
	a.Close()
	b.Close()
	return aToB, bToA
}

// pipe copies src into dst, then half-closes dst, or closes both when dst
// cannot half-close or the copy failed (so the other direction ends too).
func pipe(dst, src net.Conn) int64 {
	bp := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(onlyWriter{dst}, onlyReader{src}, *bp)
	bufPool.Put(bp)
	if cw, ok := dst.(closeWriter); ok && err == nil {
		cw.CloseWrite()
		return n
	}
	dst.Close()
	src.Close()
	return n
}

// onlyReader and onlyWriter hide ReadFrom/WriteTo so CopyBuffer uses our
// buffer instead of allocating its own.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

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
