//go:build unix

package relay

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Kernel sockets are read and written here through their RawConn, which
// lets a relay wait without a buffer; on Linux the calls themselves are raw
// (sys_linux.go says why).

// copyRaw copies from a kernel socket, waiting for it to be readable
// through its RawConn with no buffer held, and reading into a pooled one
// only once there is data. It returns errNotRaw, having read nothing, when
// src is not a kernel socket.
func copyRaw(dst io.Writer, src net.Conn) (total int64, err error) {
	rc := rawConnOf(src)
	if rc == nil {
		return 0, errNotRaw
	}
	r := &rawRead{}
	r.fn = r.read
	for {
		r.n, r.errno = 0, 0
		err := rc.Read(r.fn)
		if err == nil && r.errno != 0 {
			err = opError("read", src, r.errno)
		}
		if err == nil && r.n <= 0 {
			err = io.EOF
		}
		if err == nil {
			var w int
			w, err = write(dst, (*r.bp)[:r.n])
			total += int64(w)
		}
		if r.bp != nil {
			bufPool.Put(r.bp)
			r.bp = nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return total, nil
			}
			return total, err
		}
	}
}

// rawRead is one copyRaw's read state; fn, its bound read method, is made
// once so that a read allocates nothing.
type rawRead struct {
	fn    func(fd uintptr) bool
	bp    *[]byte
	n     int
	errno syscall.Errno
}

func (r *rawRead) read(fd uintptr) bool {
	if r.bp == nil {
		r.bp = bufPool.Get().(*[]byte)
	}
	for {
		n, e := sysRead(fd, *r.bp)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			bufPool.Put(r.bp) // nothing yet: wait without it
			r.bp = nil
			return false
		case 0:
			r.n = n
		default:
			r.errno = e
		}
		return true
	}
}

// rawWriter writes to a kernel socket with raw system calls, waiting
// through its RawConn while the socket's buffer is full.
type rawWriter struct {
	c     net.Conn
	rc    syscall.RawConn
	fn    func(fd uintptr) bool
	b     []byte
	done  int
	errno syscall.Errno
}

// rawWriterFor returns a writer for dst that makes raw system calls when
// dst is a kernel socket, else dst itself.
func rawWriterFor(dst io.Writer) io.Writer {
	c, ok := dst.(net.Conn)
	if !ok {
		return dst
	}
	rc := rawConnOf(c)
	if rc == nil {
		return dst
	}
	w := &rawWriter{c: c, rc: rc}
	w.fn = w.write
	return w
}

// Write implements io.Writer: all of b, or an error.
func (w *rawWriter) Write(b []byte) (int, error) {
	w.b, w.done, w.errno = b, 0, 0
	err := w.rc.Write(w.fn)
	w.b = nil
	if err == nil && w.errno != 0 {
		err = opError("write", w.c, w.errno)
	}
	return w.done, err
}

func (w *rawWriter) write(fd uintptr) bool {
	for w.done < len(w.b) {
		n, e := sysWrite(fd, w.b[w.done:])
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // the socket's buffer is full: wait
		case 0:
			w.done += n
		default:
			w.errno = e
			return true
		}
	}
	return true
}

// opError describes a failed read or write of c as net's own errors do.
func opError(op string, c net.Conn, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// rawConnOf returns c's RawConn when c is a kernel stream socket, else nil.
func rawConnOf(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}
