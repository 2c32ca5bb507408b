package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"geneve64/internal/testpeer"
)

// pipeLink joins two stacks: frames sent on one are delivered to the other
// by a goroutine, as a tunnel's receive loop would.
type pipeLink struct {
	ch   chan []byte
	peer *Stack
	// What the stack sent that a wire would refuse: frames over the MTU,
	// TCP segments with a wrong length or checksum.
	ethernet         bool
	mtu              int
	oversize, badTCP atomic.Int64
	// syns counts connection requests sent, retransmissions included.
	syns atomic.Int64
}

func (l *pipeLink) SendFrames(frames [][]byte) (int, error) {
	for _, f := range frames {
		linkLen := 0
		if l.ethernet {
			linkLen = header.EthernetMinimumSize
		}
		if len(f) > l.mtu+linkLen {
			l.oversize.Add(1)
		}
		if isTCP, ok := tcpFrameOK(f, l.ethernet); isTCP && !ok {
			l.badTCP.Add(1)
		}
		if isSYN(f, l.ethernet) {
			l.syns.Add(1)
		}
		select {
		case l.ch <- bytes.Clone(f):
		default: // a full queue drops, as a link does
		}
	}
	return len(frames), nil
}

// run delivers what has queued up as one batch, as a tunnel's receive
// loop delivers what one recvmmsg read, so receive coalescing is exercised.
func (l *pipeLink) run() {
	batch := make([][]byte, 0, 64)
	for f := range l.ch {
		batch = append(batch[:0], f)
	more:
		for len(batch) < cap(batch) {
			select {
			case f, ok := <-l.ch:
				if !ok {
					break more
				}
				batch = append(batch, f)
			default:
				break more
			}
		}
		l.peer.DeliverFrames(batch)
	}
}

func logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// pair builds two stacks, a (client side) and b (far end), joined back to back.
func pair(t *testing.T, payload Payload, ca, cb Config) (*Stack, *Stack) {
	t.Helper()
	a, b, _, _ := pairLinks(t, payload, ca, cb)
	return a, b
}

// pairLinks is pair, also returning the links a and b send on.
func pairLinks(t testing.TB, payload Payload, ca, cb Config) (*Stack, *Stack, *pipeLink, *pipeLink) {
	t.Helper()
	la := &pipeLink{ch: make(chan []byte, 4096), ethernet: payload == Ethernet, mtu: 1400}
	lb := &pipeLink{ch: make(chan []byte, 4096), ethernet: payload == Ethernet, mtu: 1400}
	for _, c := range []*Config{&ca, &cb} {
		c.Payload = payload
		c.MTU = 1400
		c.Logger = logger(t)
	}
	ca.MAC = MACFromIdentity(netip.MustParseAddr("2001:db8::a"), ca.Addrs)
	cb.MAC = MACFromIdentity(netip.MustParseAddr("2001:db8::b"), cb.Addrs)
	a, err := New(la, ca)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(lb, cb)
	if err != nil {
		t.Fatal(err)
	}
	la.peer, lb.peer = b, a
	go la.run()
	go lb.run()
	t.Cleanup(func() { a.Close(); b.Close(); close(la.ch); close(lb.ch) })
	return a, b, la, lb
}

var (
	addrA = []netip.Prefix{netip.MustParsePrefix("10.42.0.2/24"), netip.MustParsePrefix("fd42::2/64")}
	addrB = []netip.Prefix{netip.MustParsePrefix("10.42.0.1/24"), netip.MustParsePrefix("fd42::1/64")}
)

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// serveOne listens on st at addr until the test ends, and serves the
// first connection with serve, closing it after.
func serveOne(t *testing.T, st *Stack, addr string, serve func(net.Conn)) {
	t.Helper()
	ln, err := st.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}()
}

// tcpRoundTrip: a listener on one stack, a dial from the other, data each
// way and a half-close.
func tcpRoundTrip(t *testing.T, from, to *Stack, addr string) {
	t.Helper()
	serveOne(t, to, addr, func(c net.Conn) {
		b, _ := io.ReadAll(c) // until the client's half-close
		c.Write(append([]byte("echo:"), b...))
	})
	c, err := from.DialContext(ctx(t), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello " + addr))
	c.(interface{ CloseWrite() error }).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "echo:hello "+addr {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestTCPAndPing(t *testing.T) {
	for _, payload := range []Payload{Ethernet, IP} {
		name := map[Payload]string{Ethernet: "ethernet", IP: "ip"}[payload]
		t.Run(name, func(t *testing.T) {
			a, b := pair(t, payload, Config{Addrs: addrA}, Config{Addrs: addrB})
			tcpRoundTrip(t, a, b, "10.42.0.1:8080")
			tcpRoundTrip(t, b, a, "[fd42::2]:8080")
			for _, dst := range []string{"10.42.0.1", "fd42::1"} {
				rtt, err := a.Ping(ctx(t), netip.MustParseAddr(dst))
				if err != nil || rtt <= 0 {
					t.Fatalf("ping %s: %v %v", dst, rtt, err)
				}
			}
		})
	}
}

func TestUDP(t *testing.T) {
	a, b := pair(t, Ethernet, Config{Addrs: addrA}, Config{Addrs: addrB})
	pc, err := b.ListenPacket("udp", ":5353")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go testpeer.Shout(pc)
	for _, addr := range []string{"10.42.0.1:5353", "[fd42::1]:5353"} {
		c, err := a.DialContext(ctx(t), "udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("shout"))
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "SHOUT" {
			t.Fatalf("%s: %q %v", addr, buf[:n], err)
		}
		c.Close()
	}
}

// hostEcho runs a TCP server on the host's loopback that answers with the
// SHA-256 of what it read.
func hostEcho(t *testing.T, network, addr string) net.Listener {
	return testpeer.TCP(t, network, addr, func(c net.Conn) {
		h := sha256.New()
		io.Copy(h, c)
		c.Write(h.Sum(nil))
	})
}

func TestEgress(t *testing.T) {
	// Egress dials as the host would; targets outside this machine are
	// mapped to a loopback listener, after checking they are dialed as asked.
	var dialed sync.Map
	remote := hostEcho(t, "tcp4", "127.0.0.1:0")
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		dialed.Store(network+" "+address, true)
		if address == "192.0.2.80:80" {
			address = remote.Addr().String()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
	a, _ := pair(t, Ethernet,
		Config{Addrs: addrA, Routes: []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.42.0.1")}},
			DNS: []netip.Addr{netip.MustParseAddr("10.42.0.1")}},
		Config{Addrs: addrB, Egress: true, EgressLoopback: true, EgressDial: dial})
	ln := hostEcho(t, "tcp4", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port

	send := func(addr string, data []byte) []byte {
		c, err := a.DialContext(ctx(t), "tcp", addr)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		defer c.Close()
		go func() { c.Write(data); c.(interface{ CloseWrite() error }).CloseWrite() }()
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	data := bytes.Repeat([]byte("egress "), 300000) // 2.1 MB
	want := sha256.Sum256(data)
	// The far end's own inner address leads to its host's loopback.
	if got := send(net.JoinHostPort("10.42.0.1", itoa(port)), data); !bytes.Equal(got, want[:]) {
		t.Fatalf("via inner address: %x", got)
	}
	// Any other address is dialed from the far host as it is.
	if got := send("192.0.2.80:80", data); !bytes.Equal(got, want[:]) {
		t.Fatalf("via route: %x", got)
	}
	if _, ok := dialed.Load("tcp 192.0.2.80:80"); !ok {
		t.Fatal("the far end did not dial the address asked for")
	}
	// A target that refuses: the handshake is answered with a reset.
	dead, _ := net.Listen("tcp4", "127.0.0.1:0")
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	// The error names both ends, as the net package's do.
	if _, err := a.DialContext(ctx(t), "tcp", net.JoinHostPort("10.42.0.1", itoa(deadPort))); err == nil || !strings.Contains(err.Error(), "refused") ||
		!strings.Contains(err.Error(), "connect tcp 10.42.0.2:") || !strings.Contains(err.Error(), "->10.42.0.1:"+itoa(deadPort)) {
		t.Fatalf("dial to a closed port: %v", err)
	}

	// UDP: an echo server on the far host, reached through the far end.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go testpeer.Shout(pc)
	uc, err := a.DialContext(ctx(t), "udp", net.JoinHostPort("10.42.0.1", itoa(pc.LocalAddr().(*net.UDPAddr).Port)))
	if err != nil {
		t.Fatal(err)
	}
	uc.SetDeadline(time.Now().Add(5 * time.Second))
	uc.Write([]byte("udp egress"))
	buf := make([]byte, 64)
	n, err := uc.Read(buf)
	if err != nil || string(buf[:n]) != "UDP EGRESS" {
		t.Fatalf("udp: %q %v", buf[:n], err)
	}

	// DNS: the far end answers from its host's resolver, reached as the
	// client's --dns. "localhost" (in every hosts file) is the far host's
	// loopback, so it comes back as the far end's inner address.
	addrs, err := a.LookupNetIP(ctx(t), "ip4", "localhost")
	if err != nil || len(addrs) == 0 || addrs[0] != netip.MustParseAddr("10.42.0.1") {
		t.Fatalf("lookup through the tunnel: %v %v", addrs, err)
	}
	if got := send(net.JoinHostPort("localhost", itoa(port)), data); !bytes.Equal(got, want[:]) {
		t.Fatalf("via localhost: %x", got)
	}
	if _, err := a.LookupNetIP(ctx(t), "ip4", "no-such-name.invalid"); err == nil || !strings.Contains(err.Error(), "no such host") {
		t.Fatalf("NXDOMAIN through the tunnel: %v", err)
	}
	// The same over TCP port 53, as resolvers ask when UDP answers are truncated.
	tc, err := a.DialContext(ctx(t), "tcp", "10.42.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	q := dnsmessage.Message{Header: dnsmessage.Header{ID: 7, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName("localhost."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}
	qb, _ := q.Pack()
	tc.Write(append([]byte{byte(len(qb) >> 8), byte(len(qb))}, qb...))
	var n2 [2]byte
	io.ReadFull(tc, n2[:])
	rb := make([]byte, int(n2[0])<<8|int(n2[1]))
	if _, err := io.ReadFull(tc, rb); err != nil {
		t.Fatal(err)
	}
	var r dnsmessage.Message
	if err := r.Unpack(rb); err != nil || r.ID != 7 || r.RCode != dnsmessage.RCodeSuccess || len(r.Answers) != 1 {
		t.Fatalf("DNS over TCP: %+v %v", r, err)
	}
	if a, ok := r.Answers[0].Body.(*dnsmessage.AResource); !ok || a.A != [4]byte{10, 42, 0, 1} {
		t.Fatalf("DNS over TCP answered %v", r.Answers[0].Body)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestMACFilter: Ethernet frames for another MAC are not taken, even with
// egress accepting any IP address.
func TestMACFilter(t *testing.T) {
	_, b := pair(t, Ethernet, Config{Addrs: addrA}, Config{Addrs: addrB, Egress: true, EgressLoopback: true})
	f := make([]byte, 60)
	copy(f, []byte{0x02, 1, 2, 3, 4, 5})
	f[12], f[13] = 0x08, 0x00
	b.DeliverFrames([][]byte{f, f[:10]})
	if s := b.Stats(); s.FramesForOthers != 1 || s.BadFrames != 1 {
		t.Fatalf("%+v", s)
	}
}

func TestInnerMTU(t *testing.T) {
	for _, tc := range []struct {
		path, overhead int
		v6out          bool
		payload        Payload
		v6in           bool
		want           int
	}{
		{1500, 44, true, Ethernet, false, 1500 - 40 - 8 - 44 - 14}, // 1394
		{1500, 44, false, IP, false, 1500 - 20 - 8 - 44},
		{1280, 44, true, Ethernet, true, 1280}, // clamped for IPv6
		{1280, 44, true, Ethernet, false, 1280 - 40 - 8 - 44 - 14},
	} {
		if got := InnerMTU(tc.path, tc.v6out, tc.overhead, tc.payload, tc.v6in); got != tc.want {
			t.Errorf("%+v: %d", tc, got)
		}
	}
}

func TestParseRoute(t *testing.T) {
	r, err := ParseRoute("0.0.0.0/0@10.42.0.1")
	if err != nil || r.Dst.String() != "0.0.0.0/0" || r.Via.String() != "10.42.0.1" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "10.0.0.0/8@fd00::1", "nonsense", "10.0.0.0/8@x"} {
		if _, err := ParseRoute(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestEgressFlowsPerPeer: one peer cannot open more egress flows than its
// share; the refused handshake is reset, and closing a flow frees a slot.
func TestEgressFlowsPerPeer(t *testing.T) {
	a, b := pair(t, Ethernet, Config{Addrs: addrA}, Config{Addrs: addrB, Egress: true, EgressLoopback: true, MaxFlowsPerPeer: 3})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	target := net.JoinHostPort("10.42.0.1", itoa(ln.Addr().(*net.TCPAddr).Port))
	var open []net.Conn
	for i := 0; i < 3; i++ {
		c, err := a.DialContext(ctx(t), "tcp", target)
		if err != nil {
			t.Fatalf("flow %d: %v", i, err)
		}
		open = append(open, c)
	}
	if _, err := a.DialContext(ctx(t), "tcp", target); err == nil {
		t.Fatal("a fourth flow was admitted")
	}
	if b.Stats().FlowsRefused != 1 {
		t.Fatalf("refused %d", b.Stats().FlowsRefused)
	}
	open[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := a.DialContext(ctx(t), "tcp", target)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the freed slot was never reused: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range open[1:] {
		c.Close()
	}
}

// TestListenerYieldsTCPConn: connections accepted inside the tunnel are
// TCPConns (their relays wait without buffers), and Close ends a waiting
// Accept with net.ErrClosed.
func TestListenerYieldsTCPConn(t *testing.T) {
	a, b := pair(t, IP, Config{Addrs: addrA}, Config{Addrs: addrB})
	ln, err := b.Listen("tcp", "10.42.0.1:7070")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := a.DialContext(ctx(t), "tcp", "10.42.0.1:7070")
		if err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tc, ok := c.(*TCPConn)
	if !ok {
		t.Fatalf("accepted a %T", c)
	}
	tc.WaitReadable()
	buf := make([]byte, 4)
	if n, err := tc.TryRead(buf); n != 1 || err != nil || buf[0] != 'x' {
		t.Fatalf("TryRead: %d %v", n, err)
	}
	tc.WaitReadable() // the peer's close
	if _, err := tc.TryRead(buf); err != io.EOF {
		t.Fatalf("after the peer closed: %v", err)
	}
	c.Close()
	done := make(chan error, 1)
	go func() { _, err := ln.Accept(); done <- err }()
	time.Sleep(20 * time.Millisecond)
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waiting after Close")
	}
}

// TestTCPSettings: Config.TCP changes what it names, and a value mistyped
// is an error rather than a setting silently turned off.
func TestTCPSettings(t *testing.T) {
	if s, err := parseTCPSettings(""); err != nil || s.RACK {
		t.Fatalf("defaults: RACK %v, %v; want off", s.RACK, err)
	}
	if s, err := parseTCPSettings("rack=on,cc=cubic"); err != nil || !s.RACK || s.CC != "cubic" {
		t.Fatalf("rack=on,cc=cubic: %+v, %v", s, err)
	}
	for _, bad := range []string{"rack=of", "sack=yes", "nonsense=1", "rcvbuf=big"} {
		if _, err := parseTCPSettings(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestDialErrorsAreErrnos: a dial into the tunnel fails with the
// syscall.Errno the host's stack would give, so callers use errors.Is.
func TestDialErrorsAreErrnos(t *testing.T) {
	a, _ := pair(t, Ethernet, Config{Addrs: addrA}, Config{Addrs: addrB})
	_, err := a.DialContext(ctx(t), "tcp", "10.42.0.1:9") // nobody listens
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial to a closed port: %v, want ECONNREFUSED", err)
	}
}
