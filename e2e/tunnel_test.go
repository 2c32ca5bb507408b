package e2e

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"geneve64/internal/netsim"
	"geneve64/internal/testpeer"
	"geneve64/socks"
)

// setups are the two ways the tunnel tests run: real loopback UDP sockets,
// and the simulated world with a client behind NAT444+NAT64 and a server
// behind the extension gateway.
var setups = []struct {
	name  string
	start func(*testing.T, pairOptions) *pair
}{
	{"loopback", loopbackPair},
	{"nat64", simPair},
}

// TestSOCKSBulk: 64 MiB each way through SOCKS5, the tunnel and the far
// end's egress to an HTTP server on the far host, found by name.
func TestSOCKSBulk(t *testing.T) {
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			p := s.start(t, pairOptions{})
			far := startFarHost(t)
			c := p.httpClient(t)
			const n = 64 << 20
			start := time.Now()
			download(t, c, far.url("localhost", "/download"), 1, n)
			t.Logf("64 MiB down in %v", time.Since(start))
			start = time.Now()
			upload(t, c, far.url("localhost", "/upload"), 2, n)
			t.Logf("64 MiB up in %v", time.Since(start))
			// By inner address as well, IPv4 and IPv6.
			download(t, c, far.url("10.42.0.1", "/download"), 3, 1<<20)
			download(t, c, far.url("fd42::1", "/download"), 4, 1<<20)
		})
	}
}

// TestCurl: a real SOCKS5 client, resolving the name at the proxy.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl is required in CI: apt-get install curl")
		}
		t.Skip("curl not installed")
	}
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			p := s.start(t, pairOptions{})
			far := startFarHost(t)
			out, err := exec.Command(curl, "-sS", "--max-time", "20", "--socks5-hostname", p.near.SOCKS.Addr().String(),
				far.url("localhost", "/")).CombinedOutput()
			if err != nil || string(out) != "hello from the far side\n" {
				t.Fatalf("curl: %q %v", out, err)
			}
		})
	}
}

// TestUDPAssociateThroughTunnel: a datagram to a UDP echo server on the far
// host, through SOCKS5 UDP ASSOCIATE and the tunnel.
func TestUDPAssociateThroughTunnel(t *testing.T) {
	p := loopbackPair(t, pairOptions{})
	echo := testpeer.UDPUpper(t)
	ctrl, err := net.Dial("tcp", p.near.SOCKS.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	ctrl.Write([]byte{5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0})
	reply := make([]byte, 12)
	if _, err := io.ReadFull(ctrl, reply); err != nil || reply[3] != 0 || reply[5] != 1 {
		t.Fatalf("associate: %x %v", reply, err)
	}
	relayAddr := netip.AddrPortFrom(netip.AddrFrom4([4]byte(reply[6:10])), binary.BigEndian.Uint16(reply[10:]))
	uc, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(relayAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	// To the far end's inner address: egress maps it to the far host's loopback.
	hdr := append([]byte{0, 0, 0, 1, 10, 42, 0, 1}, byte(echo.Port()>>8), byte(echo.Port()))
	got := make([]byte, 200)
	eventually(t, "a UDP reply", func() bool {
		uc.Write(append(hdr, "ping over udp"...))
		uc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := uc.Read(got)
		return err == nil && n > 10 && string(got[10:n]) == "PING OVER UDP"
	})
}

func TestPing(t *testing.T) {
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			p := s.start(t, pairOptions{})
			for _, dst := range []string{"10.42.0.1", "fd42::1"} {
				rtt, err := p.near.Stack.Ping(withTimeout(t, 5*time.Second), ip(dst))
				if err != nil {
					t.Fatalf("ping %s: %v", dst, err)
				}
				t.Logf("ping %s: %v", dst, rtt)
			}
			if _, err := p.far.Stack.Ping(withTimeout(t, 5*time.Second), ip("fd42::2")); err != nil {
				t.Fatalf("ping back: %v", err)
			}
		})
	}
}

// TestForwards: a local forward on the near end and a reverse forward on
// the far end, TCP and UDP, 200 TCP connections at once through each; no
// goroutines are left once they end.
func TestForwards(t *testing.T) {
	base := testpeer.Goroutines()
	func() {
		far := startFarHost(t)
		echo := testpeer.UDPUpper(t)
		fwd := func(spec string, reverse bool) socks.Forward {
			f, err := socks.ParseForward(spec, reverse)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		p := loopbackPair(t, pairOptions{
			forwards: []socks.Forward{
				fwd("127.0.0.1:0=10.42.0.1:"+strconv.Itoa(far.port), false),
				fwd("udp/127.0.0.1:0=10.42.0.1:"+strconv.Itoa(int(echo.Port())), false),
			},
			reverses: []socks.Forward{
				fwd("10.42.0.1:7000=127.0.0.1:"+strconv.Itoa(far.port), true),
				fwd("udp/10.42.0.1:7001="+echo.String(), true),
			},
		})
		local := p.near.Forwards[0].Addr().String()
		// Local TCP forward: 200 HTTP requests at once.
		var wg sync.WaitGroup
		errs := make(chan error, 400)
		get := func(dial func() (net.Conn, error)) {
			defer wg.Done()
			c, err := dial()
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
			b, err := io.ReadAll(c)
			if err != nil || !strings.HasSuffix(string(b), "hello from the far side\n") {
				errs <- err
			}
		}
		for i := 0; i < 200; i++ {
			wg.Add(2)
			go get(func() (net.Conn, error) { return net.Dial("tcp", local) })
			// Reverse TCP forward: a client inside the tunnel connects to
			// the far end's inner port 7000, served from the far host.
			go get(func() (net.Conn, error) {
				return p.near.Stack.DialContext(withTimeout(t, 30*time.Second), "tcp", "10.42.0.1:7000")
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("connection failed: %v", err)
		}
		// UDP both ways.
		uc, _ := net.Dial("udp", p.near.Forwards[1].Addr().String())
		defer uc.Close()
		udpRoundTrip(t, uc, "local udp")
		ic, err := p.near.Stack.DialContext(withTimeout(t, 5*time.Second), "udp", "10.42.0.1:7001")
		if err != nil {
			t.Fatal(err)
		}
		defer ic.Close()
		udpRoundTrip(t, ic, "reverse udp")
		eventually(t, "connections to end", func() bool {
			return p.near.Forwards[0].Active() == 0 && p.far.Forwards[0].Active() == 0
		})
		p.near.Close()
		p.far.Close()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for testpeer.Goroutines() > base+5 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d, baseline %d\n%s", testpeer.Goroutines(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func udpRoundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	buf := make([]byte, 200)
	eventually(t, msg, func() bool {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		return err == nil && string(buf[:n]) == strings.ToUpper(msg)
	})
}

// TestSOCKSHoldsManyConnections: every connection through a SOCKS5
// front-end leaves the far end from the near end's one inner address, so
// the far end's per-peer flow limit caps the whole front-end. With the
// defaults it must not be what stops it: 1,100 held connections and 64
// more opened at once all get through, and the far end refuses none.
func TestSOCKSHoldsManyConnections(t *testing.T) {
	p := loopbackPair(t, pairOptions{})
	echo := testpeer.TCP(t, "tcp4", "127.0.0.1:0", func(c net.Conn) { io.Copy(c, c) })
	target := net.JoinHostPort("10.42.0.1", strconv.Itoa(echo.Addr().(*net.TCPAddr).Port))
	d := p.socksDialer(t)
	open := func() (net.Conn, error) {
		c, err := d.DialContext(withTimeout(t, 10*time.Second), "tcp", target)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b := []byte{42}
		_, err = c.Write(b)
		if err == nil {
			_, err = io.ReadFull(c, b)
		}
		if err != nil || b[0] != 42 {
			c.Close()
			return nil, fmt.Errorf("echo: %q, %v", b, err)
		}
		return c, nil
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < 1100; i++ {
		c, err := open()
		if err != nil {
			t.Fatalf("held connection %d: %v (far end refused %d flows)", i, err, p.far.Stack.Stats().FlowsRefused)
		}
		held = append(held, c)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := open()
			if err != nil {
				errs <- err
				return
			}
			c.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("with %d held: %v", len(held), err)
	}
	if r := p.far.Stack.Stats().FlowsRefused; r != 0 {
		t.Fatalf("the far end refused %d flows", r)
	}
}

// TestTransferSurvivesFaults: 1% loss and reordering on the internet, and
// the client's carrier NAT rebinding in the middle of a transfer.
func TestTransferSurvivesFaults(t *testing.T) {
	p := simPair(t, pairOptions{})
	far := startFarHost(t)
	p.world.internet.SetFaults(netsim.Faults{Loss: 0.01, Reorder: 0.02, ReorderBy: 2 * time.Millisecond})
	c := p.httpClient(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		download(t, c, far.url("localhost", "/download"), 9, 16<<20)
	}()
	time.Sleep(300 * time.Millisecond)
	before := p.far.Endpoint.Peers()[0].Path
	p.world.cgn.Rebind()
	<-done
	upload(t, c, far.url("localhost", "/upload"), 10, 4<<20)
	if after := p.far.Endpoint.Peers()[0].Path; after == before {
		t.Fatalf("the server's path did not follow the rebinding (%s)", after)
	}
	// The loss was repaired by retransmission, and nothing our links
	// segmented, coalesced or sent again reached either netstack damaged.
	fs, ns := p.far.Stack.Stats(), p.near.Stack.Stats()
	if fs.TCPRetransmits == 0 {
		t.Fatal("16 MiB through 1% loss and no retransmission counted")
	}
	if fs.TCPChecksumErrors != 0 || ns.TCPChecksumErrors != 0 || fs.IPMalformed+fs.TCPInvalid != 0 || ns.IPMalformed+ns.TCPInvalid != 0 {
		t.Fatalf("damaged packets: far %+v, near %+v", fs, ns)
	}
}

// TestIPPayload: with plain IP payloads (--payload ip) instead of Ethernet,
// TCP through SOCKS and ping work over IPv4 and IPv6 inside.
func TestIPPayload(t *testing.T) {
	p := loopbackPair(t, pairOptions{ipOnly: true})
	far := startFarHost(t)
	c := p.httpClient(t)
	download(t, c, far.url("10.42.0.1", "/download"), 5, 8<<20)
	download(t, c, far.url("fd42::1", "/download"), 6, 1<<20)
	for _, dst := range []string{"10.42.0.1", "fd42::1"} {
		if _, err := p.near.Stack.Ping(withTimeout(t, 5*time.Second), ip(dst)); err != nil {
			t.Fatalf("ping %s: %v", dst, err)
		}
	}
	if d := p.far.Endpoint.Stats().TotalDrops(); d != 0 {
		t.Fatalf("%d drops", d)
	}
}
