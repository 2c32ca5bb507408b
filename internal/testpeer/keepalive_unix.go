//go:build unix

package testpeer

import (
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// KeepAlive reads SO_KEEPALIVE from a kernel TCP connection: 1 when the
// kernel sends keep-alive probes on it.
func KeepAlive(t *testing.T, c net.Conn) int {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}
