package socks

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"geneve64/internal/testpeer"
)

// hostNetwork is a Network over the host's own sockets, with a name table:
// enough to test the front-ends without a tunnel.
type hostNetwork struct {
	names   map[string]netip.Addr
	lookups atomic.Int32
}

func (h *hostNetwork) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}
func (h *hostNetwork) Listen(network, address string) (net.Listener, error) {
	return net.Listen(network, address)
}
func (h *hostNetwork) ListenPacket(network, address string) (net.PacketConn, error) {
	return net.ListenPacket(network, address)
}
func (h *hostNetwork) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	h.lookups.Add(1)
	if a, ok := h.names[host]; ok {
		return []netip.Addr{a}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// upperServer echoes upper-cased bytes until EOF, then closes.
func upperServer(t *testing.T) net.Listener {
	return testpeer.TCP(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		b, _ := io.ReadAll(c)
		c.Write(bytes.ToUpper(b))
	})
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	defer c.Close()
	c.Write([]byte(msg))
	c.(interface{ CloseWrite() error }).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != strings.ToUpper(msg) {
		t.Fatalf("got %q, %v", got, err)
	}
}

// listenAndDialer starts a SOCKS5 server over nw on loopback and returns
// it with a client dialer for it.
func listenAndDialer(t *testing.T, nw Network) (*Server, proxy.Dialer) {
	t.Helper()
	s, err := Listen(nw, Config{Addr: "127.0.0.1:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	d, err := proxy.SOCKS5("tcp", s.Addr().String(), nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	return s, d
}

func TestConnect(t *testing.T) {
	base := testpeer.Goroutines()
	ln := upperServer(t)
	port := ln.Addr().(*net.TCPAddr).Port
	nw := &hostNetwork{names: map[string]netip.Addr{"far.example": netip.MustParseAddr("127.0.0.1")}}
	s, d := listenAndDialer(t, nw)
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "by address")
	c, err = d.Dial("tcp", net.JoinHostPort("far.example", itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "by name, resolved in the tunnel")
	if nw.lookups.Load() == 0 {
		t.Fatal("the name was not resolved through the Network")
	}
	if _, err := d.Dial("tcp", "nowhere.example:80"); err == nil {
		t.Fatal("unknown name connected")
	}
	s.Close()
	waitGoroutines(t, base)
}

func TestAuth(t *testing.T) {
	ln := upperServer(t)
	s, err := Listen(&hostNetwork{}, Config{Addr: "127.0.0.1:0", User: "alice", Pass: "s3cret", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	good, _ := proxy.SOCKS5("tcp", s.Addr().String(), &proxy.Auth{User: "alice", Password: "s3cret"}, proxy.Direct)
	c, err := good.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "authenticated")
	for _, auth := range []*proxy.Auth{nil, {User: "alice", Password: "wrong"}} {
		bad, _ := proxy.SOCKS5("tcp", s.Addr().String(), auth, proxy.Direct)
		if _, err := bad.Dial("tcp", ln.Addr().String()); err == nil {
			t.Fatalf("auth %+v accepted", auth)
		}
	}
}

// socksUDP is a minimal UDP ASSOCIATE client.
type socksUDP struct {
	ctrl  net.Conn
	relay netip.AddrPort
	pc    *net.UDPConn
}

func associate(t *testing.T, proxyAddr string) *socksUDP {
	t.Helper()
	ctrl, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	ctrl.Write([]byte{5, 1, 0})
	var rep [2]byte
	io.ReadFull(ctrl, rep[:])
	ctrl.Write([]byte{5, 3, 0, 1, 0, 0, 0, 0, 0, 0}) // ASSOCIATE, 0.0.0.0:0
	var hdr [10]byte
	if _, err := io.ReadFull(ctrl, hdr[:]); err != nil || hdr[1] != 0 || hdr[3] != 1 {
		t.Fatalf("associate reply %x %v", hdr, err)
	}
	relay := netip.AddrPortFrom(netip.AddrFrom4([4]byte(hdr[4:8])), binary.BigEndian.Uint16(hdr[8:]))
	if relay.Addr().IsUnspecified() {
		t.Fatalf("BND.ADDR %s is not usable", relay)
	}
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctrl.Close(); pc.Close() })
	return &socksUDP{ctrl: ctrl, relay: relay, pc: pc}
}

func (u *socksUDP) send(t *testing.T, to netip.AddrPort, data string) {
	b := []byte{0, 0, 0, 1}
	b = append(b, to.Addr().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, to.Port())
	u.pc.WriteToUDPAddrPort(append(b, data...), u.relay)
}

func (u *socksUDP) recv(t *testing.T) (netip.AddrPort, string) {
	t.Helper()
	u.pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2000)
	n, _, err := u.pc.ReadFromUDPAddrPort(buf)
	if err != nil || n < 10 || buf[3] != 1 {
		t.Fatalf("no reply: %v", err)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), binary.BigEndian.Uint16(buf[8:10])), string(buf[10:n])
}

func TestUDPAssociate(t *testing.T) {
	echo := testpeer.UDPUpper(t)
	s, err := Listen(&hostNetwork{}, Config{Addr: "127.0.0.1:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := associate(t, s.Addr().String())
	u.send(t, echo, "datagram one")
	from, got := u.recv(t)
	if from != echo || got != "DATAGRAM ONE" {
		t.Fatalf("reply from %s: %q", from, got)
	}
	// A stranger on another port sends through the relay: nothing happens.
	stranger, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer stranger.Close()
	b := append([]byte{0, 0, 0, 1, 127, 0, 0, 1}, byte(echo.Port()>>8), byte(echo.Port()))
	stranger.WriteToUDPAddrPort(append(b, "intruder"...), u.relay)
	stranger.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := stranger.ReadFromUDPAddrPort(make([]byte, 100)); err == nil {
		t.Fatalf("stranger got a %d-byte reply", n)
	}
	u.send(t, echo, "still mine")
	if _, got := u.recv(t); got != "STILL MINE" {
		t.Fatalf("%q", got)
	}
}

func TestForwards(t *testing.T) {
	base := testpeer.Goroutines()
	nw := &hostNetwork{}
	ln := upperServer(t)
	echo := testpeer.UDPUpper(t)
	for _, tc := range []struct {
		spec    string
		reverse bool
	}{
		{"127.0.0.1:0=" + ln.Addr().String(), false},
		{"tcp/127.0.0.1:0=" + ln.Addr().String(), true},
		{"udp/127.0.0.1:0=" + echo.String(), false},
		{"udp/127.0.0.1:0=" + echo.String(), true},
	} {
		f, err := ParseForward(tc.spec, tc.reverse)
		if err != nil {
			t.Fatal(err)
		}
		fw, err := StartForward(nw, f, time.Second, quiet())
		if err != nil {
			t.Fatal(err)
		}
		if f.Proto == "tcp" {
			for i := 0; i < 20; i++ {
				c, err := net.Dial("tcp", fw.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				roundTrip(t, c, "through "+f.String())
			}
		} else {
			c, err := net.Dial("udp", fw.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("dgram"))
			buf := make([]byte, 100)
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != "DGRAM" {
				t.Fatalf("%s: %q %v", f, buf[:n], err)
			}
			c.Close()
		}
		fw.Close()
	}
	waitGoroutines(t, base)
}

func TestParseForward(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		reverse bool
		want    Forward
	}{
		{"8080=10.42.0.1:80", false, Forward{Proto: "tcp", Listen: "127.0.0.1:8080", Target: "10.42.0.1:80"}},
		{"udp/:5353=10.42.0.1:53", false, Forward{Proto: "udp", Listen: "127.0.0.1:5353", Target: "10.42.0.1:53"}},
		{"tcp/[::1]:2222=[fd42::1]:22", false, Forward{Proto: "tcp", Listen: "[::1]:2222", Target: "[fd42::1]:22"}},
		{"10.42.0.2:80=8080", true, Forward{Proto: "tcp", Reverse: true, Listen: "10.42.0.2:80", Target: "127.0.0.1:8080"}},
	} {
		got, err := ParseForward(tc.spec, tc.reverse)
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.spec, got, err, tc.want)
		}
	}
	for _, bad := range []string{"sctp/1=2:3", "8080", "=1.2.3.4:5", "8080=10.42.0.1", "tcp/8080="} {
		if _, err := ParseForward(bad, false); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for testpeer.Goroutines() > base+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d, baseline %d\n%s", testpeer.Goroutines(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// stalledNetwork dials targets that never read, as a far side does once its
// window is shut: a relay writing to one blocks.
type stalledNetwork struct {
	hostNetwork
	far chan net.Conn
}

func (n *stalledNetwork) DialContext(context.Context, string, string) (net.Conn, error) {
	near, far := net.Pipe()
	n.far <- far
	return tcpAddrConn{near}, nil
}

// tcpAddrConn gives a pipe the TCP address a SOCKS reply needs.
type tcpAddrConn struct{ net.Conn }

func (tcpAddrConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 1} }

// TestCloseEndsStalledRelays: Close returns while a relay is blocked
// writing to a target that stopped reading; closing only the client side
// would leave it blocked for good.
func TestCloseEndsStalledRelays(t *testing.T) {
	base := testpeer.Goroutines()
	nw := &stalledNetwork{far: make(chan net.Conn, 1)}
	s, d := listenAndDialer(t, nw)
	c, err := d.Dial("tcp", "192.0.2.1:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	far := <-nw.far
	defer far.Close()
	c.Write([]byte("nobody reads this"))
	time.Sleep(50 * time.Millisecond) // the relay is now blocked in its write
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a relay whose target stopped reading")
	}
	waitGoroutines(t, base)
}
