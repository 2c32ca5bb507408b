//go:build unix

package relay

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// copyRaw copies from a kernel socket, waiting for it to be readable
// through its RawConn with no buffer held, and reading into a pooled one
// only once there is data: the same system calls as a plain Read. It
// returns errNotRaw, having read nothing, when src is not a kernel socket.
func copyRaw(dst io.Writer, src net.Conn) (total int64, err error) {
	sc, isSys := src.(syscall.Conn)
	if !isSys {
		return 0, errNotRaw
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, errNotRaw
	}
	for {
		var bp *[]byte
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			if bp == nil {
				bp = bufPool.Get().(*[]byte)
			}
			for {
				n, rerr = syscall.Read(int(fd), *bp)
				if rerr != syscall.EINTR {
					break
				}
			}
			if rerr == syscall.EAGAIN {
				bufPool.Put(bp) // nothing yet: wait without it
				bp = nil
				return false
			}
			return true
		})
		if err == nil && rerr != nil {
			err = &net.OpError{Op: "read", Net: src.LocalAddr().Network(), Source: src.LocalAddr(), Addr: src.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
		}
		if err == nil && n <= 0 {
			err = io.EOF
		}
		if err == nil {
			var w int
			w, err = write(dst, (*bp)[:n])
			total += int64(w)
		}
		if bp != nil {
			bufPool.Put(bp)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return total, nil
			}
			return total, err
		}
	}
}
