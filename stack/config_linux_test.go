package stack

import (
	"context"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDialHostKeepAlive: egress connections to loopback carry no
// keep-alive, where a plain dial has Go's default (on).
func TestDialHostKeepAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	keepAlive := func(c net.Conn) int {
		rc, err := c.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		rc.Control(func(fd uintptr) { v, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE) })
		return v
	}
	c, err := dialHost(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	plain, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if got, def := keepAlive(c), keepAlive(plain); got != 0 || def != 1 {
		t.Fatalf("SO_KEEPALIVE: egress dial to loopback %d (want 0), plain dial %d (want 1)", got, def)
	}
}
