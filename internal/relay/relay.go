// Package relay copies between two connections with proper half-close. It
// is its own package because both the netstack's egress (package stack) and
// the front-ends (package socks) need exactly this, and neither should
// import the other for it.
//
// A relay waits without a buffer: it takes a 64 KiB buffer from a pool only
// once its source has something to read, and gives it back when the source
// is drained. An idle connection then holds its two parked goroutines and
// nothing else. Two kinds of source can wait that way: a kernel socket
// (waiting through its syscall.RawConn, on Unix) and a Waiter, which the
// netstack's TCP connections are. Anything else is read the plain way.
// On Unix, kernel sockets are also read and written with raw system calls
// (raw_unix.go says why).
package relay

import (
	"errors"
	"io"
	"net"
	"sync"

	"geneve64/internal/workers"
)

// closeWriter is a connection that can shut down its sending half.
type closeWriter interface{ CloseWrite() error }

// bufSize moves a TCP window's worth per read.
const bufSize = 64 << 10

// errNotRaw says copyRaw cannot wait on this source.
var errNotRaw = errors.New("relay: not a kernel socket")

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Waiter is a connection that can be read without waiting and can wait
// until it is readable without a buffer: stack.TCPConn.
type Waiter interface {
	// TryRead reads what has arrived: 0 and a nil error when nothing has,
	// io.EOF at the end of the stream.
	TryRead(b []byte) (int, error)
	// WaitReadable returns once a read would not wait: data, the end of
	// the stream or an error (a closed connection included).
	WaitReadable()
}

// Stream copies a→b and b→a until both directions end, passing on each
// end-of-stream as a half-close (CloseWrite) where the connection supports
// it, then closes both. It returns the bytes copied each way.
//
// The calling goroutine copies a→b and a new one b→a. Writing into the
// netstack runs deep, so pass the netstack's connection as b: the caller's
// stack has usually grown already, and the new goroutine's then never has
// to.
func Stream(a, b net.Conn) (aToB, bToA int64) {
	var wg sync.WaitGroup
	wg.Add(1)
	workers.Go(func() { // b→a
		defer wg.Done()
		bToA = pipe(a, b)
	})
	aToB = pipe(b, a)
	wg.Wait()
	a.Close()
	b.Close()
	return aToB, bToA
}

// pipe copies src into dst, then half-closes dst, or closes both when dst
// cannot half-close or the copy failed (so the other direction ends too).
func pipe(dst, src net.Conn) int64 {
	n, err := copyConn(dst, src)
	if cw, ok := dst.(closeWriter); ok && err == nil {
		cw.CloseWrite()
		return n
	}
	dst.Close()
	src.Close()
	return n
}

// copyConn copies src to dst until src's end of stream (nil) or an error,
// waiting without a buffer where src allows it.
func copyConn(dst io.Writer, src net.Conn) (int64, error) {
	dst = rawWriterFor(dst)
	if w, ok := src.(Waiter); ok {
		return copyWaiter(dst, w)
	}
	if n, err := copyRaw(dst, src); err != errNotRaw {
		return n, err
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return io.CopyBuffer(onlyWriter{dst}, onlyReader{src}, *bp)
}

// onlyReader and onlyWriter hide ReadFrom/WriteTo so CopyBuffer uses our
// buffer instead of allocating its own.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// copyWaiter copies from a Waiter: wait, then drain with a pooled buffer.
func copyWaiter(dst io.Writer, src Waiter) (int64, error) {
	var total int64
	for {
		src.WaitReadable()
		bp := bufPool.Get().(*[]byte)
		for {
			n, err := src.TryRead(*bp)
			if n > 0 {
				w, werr := write(dst, (*bp)[:n])
				total += int64(w)
				if werr != nil {
					bufPool.Put(bp)
					return total, werr
				}
				continue
			}
			if err != nil {
				bufPool.Put(bp)
				if err == io.EOF {
					return total, nil
				}
				return total, err
			}
			break // drained: wait again, without the buffer
		}
		bufPool.Put(bp)
	}
}

// write writes all of b to dst, as io.Copy would count and fail.
func write(dst io.Writer, b []byte) (int, error) {
	w, err := dst.Write(b)
	if err == nil && w != len(b) {
		err = io.ErrShortWrite
	}
	return w, err
}
