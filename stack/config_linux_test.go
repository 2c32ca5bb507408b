package stack

import (
	"context"
	"net"
	"testing"

	"geneve64/internal/testpeer"
)

// TestDialHostKeepAlive: egress connections to loopback carry no
// keep-alive, where a plain dial has Go's default (on).
func TestDialHostKeepAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
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
	if got, def := testpeer.KeepAlive(t, c), testpeer.KeepAlive(t, plain); got != 0 || def != 1 {
		t.Fatalf("SO_KEEPALIVE: egress dial to loopback %d (want 0), plain dial %d (want 1)", got, def)
	}
}
