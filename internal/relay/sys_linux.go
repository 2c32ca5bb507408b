package relay

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux, the relay's reads and writes of kernel sockets are raw system
// calls (RawSyscall), as gVisor's own non-blocking packet I/O makes them.
// The sockets are non-blocking, so a call never waits in the kernel: Go's
// poller does the waiting, through RawConn. What the raw calls skip is the
// runtime's system-call bookkeeping, and with it a cost that dominated a
// small exchange: the first tracked call after the process was idle wakes
// the runtime's monitor thread, one more context switch per packet
// exchange on a busy CPU: a scheduler trace of the pinned ping-pong showed
// 8 context switches per round trip where 6 would do, and going raw took
// its p50 from 110-118 to 85-91 µs.

// sysRead reads fd into b (len(b) > 0).
func sysRead(fd uintptr, b []byte) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), e
}

// sysWrite writes b (len(b) > 0) to fd.
func sysWrite(fd uintptr, b []byte) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), e
}
