package stack

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"

	"geneve64/internal/testpeer"
)

// TestServerClosesFirst: 3,000 short connections through egress to a host
// server that closes first, as HTTP/1.0 servers do. The far end then holds
// each connection in TIME-WAIT, where a SYN reusing its ports is dropped
// (there is no listener to hand it to), and the dial would wait a second
// for its SYN's retransmission. Each dial must send one SYN: with ports
// picked at random, about one in 80 sent two.
func TestServerClosesFirst(t *testing.T) {
	host := testpeer.TCP(t, "tcp4", "127.0.0.1:0", func(c net.Conn) {
		c.Write([]byte("bye\n"))
	})
	target := netip.AddrPortFrom(netip.MustParseAddr("10.42.0.1"), uint16(host.Addr().(*net.TCPAddr).Port)).String()
	a, _, la, _ := pairLinks(t, IP, Config{Addrs: addrA}, Config{Addrs: addrB, Egress: true, EgressLoopback: true})
	const conns, clients = 3000, 16
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range conns / clients {
				c, err := a.DialContext(ctx(t), "tcp", target)
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(c)
				c.Close()
				if err != nil || string(b) != "bye\n" {
					errs <- fmt.Errorf("read %q, %v", b, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := la.syns.Load(); n != conns/clients*clients {
		t.Fatalf("%d connections sent %d SYNs", conns/clients*clients, n)
	}
}

// TestPortPicker: successive connections to one destination take
// successive ports, wrapping at the end of the range, and skip ports
// that are taken.
func TestPortPicker(t *testing.T) {
	p := newPortPicker(60000, 60009)
	dst := tcpip.FullAddress{Addr: tcpip.AddrFrom4([4]byte{10, 42, 0, 1}), Port: 80}
	taken := map[uint16]bool{}
	var got []uint16
	for range 10 {
		got = append(got, p.pick(dst, func(port uint16) bool {
			if taken[port] {
				return false
			}
			taken[port] = true
			return true
		}))
	}
	for i := 1; i < len(got); i++ {
		if want := 60000 + (got[0]-60000+uint16(i))%10; got[i] != want {
			t.Fatalf("ports %v: want %d at %d", got, want, i)
		}
	}
	if port := p.pick(dst, func(uint16) bool { return false }); port != 0 {
		t.Fatalf("a full range gave port %d", port)
	}
	// Freed ports come round again.
	delete(taken, got[3])
	if port := p.pick(dst, func(port uint16) bool { return !taken[port] }); port != got[3] {
		t.Fatalf("got %d, want the freed %d", port, got[3])
	}
}

// TestDialPortsReleased: 1,200 connections one after another through a
// range of 1,000 ports, the far end closing first. The ports come round in
// order, so each must be free again (gVisor releases a bound port under
// the connection's local address: binding the wildcard address leaked
// every one). And with the range full of connections in TIME-WAIT here,
// dials still succeed, on a port gVisor picks.
func TestDialPortsReleased(t *testing.T) {
	host := testpeer.TCP(t, "tcp4", "127.0.0.1:0", func(c net.Conn) { c.Write([]byte("bye\n")) })
	target := netip.AddrPortFrom(netip.MustParseAddr("10.42.0.1"), uint16(host.Addr().(*net.TCPAddr).Port)).String()
	a, _ := pair(t, IP, Config{Addrs: addrA}, Config{Addrs: addrB, Egress: true, EgressLoopback: true})
	if err := a.s.SetPortRange(40000, 40999); err != nil {
		t.Fatal(err)
	}
	a.ports = newPortPicker(a.s.PortRange())
	var ports []int
	for i := range 1200 {
		c, err := a.DialContext(ctx(t), "tcp", target)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		io.ReadAll(c)
		c.Close()
		ports = append(ports, c.LocalAddr().(*net.TCPAddr).Port)
	}
	for i := 1000; i < len(ports); i++ {
		if ports[i] != ports[i-1000] {
			t.Fatalf("dial %d took port %d, dial %d port %d: not released?", i, ports[i], i-1000, ports[i-1000])
		}
	}
	// The dialling end closing first: its ports wait in TIME-WAIT.
	for i := range 1200 {
		c, err := a.DialContext(ctx(t), "tcp", target)
		if err != nil {
			t.Fatalf("dial %d with the range in TIME-WAIT: %v", i, err)
		}
		c.Close()
	}
}
