package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"geneve64/internal/node"
	"geneve64/internal/testpeer"
	"geneve64/nat64"
	"geneve64/socks"
	"geneve64/stack"
)

// openFDs counts this process's open file descriptors (Linux, else -1).
func openFDs() int {
	if runtime.GOOS != "linux" {
		return -1
	}
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(es)
}

// TestNodeCloseLeavesNothing starts a client and a server node with every
// front-end (SOCKS5, TCP and UDP forwards both ways, egress with DNS),
// uses each, leaves connections open in the middle of transfers and a
// forward's dial hanging, and closes both nodes (twice, at once): again and
// again. Close must return promptly, and goroutines and file descriptors
// must come back to where they were.
func TestNodeCloseLeavesNothing(t *testing.T) {
	watch(t)
	far := startFarHost(t)
	fdsBefore := openFDs()
	goBefore := testpeer.Goroutines()
	for round := range 8 {
		closeTook := closeRound(t, far, round)
		if closeTook > 5*time.Second {
			t.Fatalf("round %d: Close took %v", round, closeTook)
		}
	}
	// A start that fails after the outer socket and the stack are up (the
	// SOCKS port is taken) leaves nothing behind either.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, err = node.Start(context.Background(), node.Config{
		Endpoint: nat64.Config{Mode: nat64.Server, VNI: 42, Local: ap("[2001:db8:b::1]:0"), Bind: ap("[::1]:0"),
			Remote: pf("fdd9:f2f4:ed01::/64")},
		Stack:  stack.Config{Addrs: farAddrs, Egress: true, EgressLoopback: true},
		SOCKS:  &socks.Config{Addr: taken.Addr().String()},
		Logger: logger(t),
	})
	taken.Close()
	if err == nil {
		t.Fatal("a node started with its SOCKS port taken")
	}
	// Close has returned: what the nodes started has ended already, but
	// for the connections the test itself still holds, which the far host
	// and the kernel end in their own time.
	goAfter, fdsAfter := testpeer.Goroutines(), openFDs()
	deadline := time.Now().Add(5 * time.Second)
	for (goAfter > goBefore || fdsAfter > fdsBefore) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		goAfter, fdsAfter = testpeer.Goroutines(), openFDs()
	}
	if goAfter > goBefore {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before, %d after:\n%s", goBefore, goAfter, buf[:runtime.Stack(buf, true)])
	}
	if fdsAfter > fdsBefore {
		out, _ := os.ReadDir("/proc/self/fd")
		var links []string
		for _, e := range out {
			l, _ := os.Readlink("/proc/self/fd/" + e.Name())
			links = append(links, l)
		}
		t.Fatalf("%d file descriptors before, %d after: %v", fdsBefore, fdsAfter, links)
	}
}

// closeRound runs one pair of nodes through its paces and returns how long
// closing both took.
func closeRound(t *testing.T, far *farHost, round int) time.Duration {
	t.Helper()
	ctx := context.Background()
	srv, err := node.Start(ctx, node.Config{
		Endpoint: nat64.Config{Mode: nat64.Server, VNI: 42, Local: ap("[2001:db8:b::1]:0"), Bind: ap("[::1]:0"),
			Remote: pf("fdd9:f2f4:ed01::/64"), Logger: logger(t)},
		Stack:    stack.Config{Addrs: farAddrs, Egress: true, EgressLoopback: true, EgressDial: hangingDial},
		Forwards: []socks.Forward{{Proto: "tcp", Reverse: true, Listen: "10.42.0.1:7000", Target: fmt.Sprintf("127.0.0.1:%d", far.port)}},
		Logger:   logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	path := srv.Endpoint.LocalAddr()
	cli, err := node.Start(ctx, node.Config{
		Endpoint: nat64.Config{Mode: nat64.Client, VNI: 42, Local: ap("[fdd9:f2f4:ed01::1]:0"),
			Path: nat64.Target{Addr: path.Addr(), Port: path.Port()}, Remote: pf("2001:db8:b::1/128")},
		Stack: nearStack(),
		SOCKS: &socks.Config{Addr: "127.0.0.1:0"},
		Forwards: []socks.Forward{
			{Proto: "tcp", Listen: "127.0.0.1:0", Target: fmt.Sprintf("10.42.0.1:%d", far.port)},
			{Proto: "tcp", Listen: "127.0.0.1:0", Target: hangingTarget}, // the dial hangs
			{Proto: "udp", Listen: "127.0.0.1:0", Target: "10.42.0.1:53"},
		},
		Logger: logger(t),
	})
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	p := &pair{near: cli, far: srv}
	p.waitUp(t)
	// A finished request through SOCKS, and one left in the middle of a
	// long download; the same through the forward and the reverse forward.
	c := p.httpClient(t)
	download(t, c, far.url("localhost", "/download"), uint64(round), 1<<20)
	var open []io.Closer
	d := p.socksDialer(t)
	for _, target := range []string{fmt.Sprintf("localhost:%d", far.port), "10.42.0.1:7000"} {
		conn, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /download?n=%d&seed=1 HTTP/1.0\r\n\r\n", 1<<30)
		io.ReadFull(conn, make([]byte, 4096))
		open = append(open, conn)
	}
	// A SOCKS CONNECT whose dial hangs.
	go func() {
		if conn, err := d.DialContext(ctx, "tcp", hangingTarget); err == nil {
			conn.Close()
		}
	}()
	for i, fw := range cli.Forwards {
		if i == 2 {
			uc, err := net.Dial("udp", fw.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			uc.Write(dnsQuery("localhost"))
			open = append(open, uc)
			continue
		}
		conn, err := net.Dial("tcp", fw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			fmt.Fprintf(conn, "GET /download?n=%d&seed=1 HTTP/1.0\r\n\r\n", 1<<30)
			io.ReadFull(conn, make([]byte, 4096))
		}
		open = append(open, conn) // i == 1: its dial is under way
	}
	time.Sleep(200 * time.Millisecond) // the hanging dials are under way
	// The client first, on its own: closing the server would end the
	// client's hanging dials for it.
	start := time.Now()
	for _, n := range []*node.Node{cli, srv} {
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() { defer wg.Done(); n.Close() }()
		}
		wg.Wait()
	}
	took := time.Since(start)
	for _, c := range open {
		c.Close()
	}
	return took
}

// dnsQuery is a DNS query for name's A record.
func dnsQuery(name string) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	msg, _ := b.Finish()
	return msg
}

// hangingTarget is an address the far end's egress never finishes dialing,
// so a connection to it through the tunnel hangs in its handshake. No
// packet leaves the host for it.
const hangingTarget = "192.0.2.99:80"

// hangingDial is the far end's egress dialer: the host's own for
// loopback, and for hangingTarget a dial that waits until it is cancelled.
func hangingDial(ctx context.Context, network, addr string) (net.Conn, error) {
	if addr == hangingTarget {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}
