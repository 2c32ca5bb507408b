package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"geneve64/geneve"
	"geneve64/internal/node"
	"geneve64/nat64"
	"geneve64/nat64/udpbatch"
	"geneve64/socks"
	"geneve64/stack"
)

// Inner addressing shared by the tunnel tests: the far end (server, egress)
// is .1, the near end (client, SOCKS) is .2.
var (
	farAddrs  = []netip.Prefix{pf("10.42.0.1/24"), pf("fd42::1/64")}
	nearAddrs = []netip.Prefix{pf("10.42.0.2/24"), pf("fd42::2/64")}
)

// pair is a client (near) and a server (far) node joined by a tunnel.
type pair struct {
	near, far *node.Node
	world     *world // nil over loopback
}

type pairOptions struct {
	forwards []socks.Forward // on the near end
	reverses []socks.Forward // on the far end
	key      []byte          // authenticated mode on both ends
	ipOnly   bool            // plain IP payloads instead of Ethernet
	// tapNear and tapFar, when set, see every datagram the end sends.
	tapNear, tapFar *tap
}

// tap is a udpbatch.PacketConn that keeps copies of the last data packets
// (not OAM) written through it: a capture to replay.
type tap struct {
	udpbatch.PacketConn
	mu   sync.Mutex
	last [][]byte
}

func (c *tap) WriteBatch(m []udpbatch.Message) (int, error) {
	c.mu.Lock()
	for _, x := range m {
		if len(x.Buf) > 100 && x.Buf[1]&0x80 == 0 { // data, not OAM
			c.last = append(c.last, bytes.Clone(x.Buf))
			if len(c.last) > 64 {
				c.last = c.last[1:]
			}
		}
	}
	c.mu.Unlock()
	return c.PacketConn.WriteBatch(m)
}

func (c *tap) captured() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.last...)
}

// listenTapped returns a ListenFunc on real UDP whose socket t wraps.
func listenTapped(t *tap) nat64.ListenFunc {
	return func(laddr netip.AddrPort) (udpbatch.PacketConn, error) {
		c, err := udpbatch.ListenUDP(laddr)
		if err != nil {
			return nil, err
		}
		t.PacketConn = c
		return t, nil
	}
}

func nearStack() stack.Config {
	return stack.Config{Addrs: nearAddrs, DNS: []netip.Addr{ip("10.42.0.1")},
		Routes: []stack.Route{{Dst: pf("0.0.0.0/0"), Via: ip("10.42.0.1")}, {Dst: pf("::/0"), Via: ip("fd42::1")}}}
}

func startNode(t testing.TB, cfg node.Config) *node.Node {
	t.Helper()
	watch(t)
	cfg.Logger = logger(t)
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// loopbackPair runs both ends on real UDP sockets on [::1].
func loopbackPair(t *testing.T, o pairOptions) *pair {
	farEP := nat64.Config{Mode: nat64.Server, VNI: 42, Local: ap("[2001:db8:b::1]:0"), Bind: ap("[::1]:0"),
		Remote: pf("fdd9:f2f4:ed01::/64"), Key: o.key}
	if o.ipOnly {
		farEP.Protocol = geneve.ProtocolIPv4
	}
	if o.tapFar != nil {
		farEP.Listen = listenTapped(o.tapFar)
	}
	far := startNode(t, node.Config{
		Endpoint: farEP,
		Stack:    stack.Config{Addrs: farAddrs, Egress: true, EgressLoopback: true},
		Forwards: o.reverses,
	})
	path := far.Endpoint.LocalAddr()
	nearEP := nat64.Config{Mode: nat64.Client, VNI: 42, Local: ap("[fdd9:f2f4:ed01::1]:0"),
		Path: nat64.Target{Addr: path.Addr(), Port: path.Port()}, Remote: pf("2001:db8:b::1/128"), Key: o.key}
	if o.ipOnly {
		nearEP.Protocol = geneve.ProtocolIPv4
	}
	if o.tapNear != nil {
		nearEP.Listen = listenTapped(o.tapNear)
		nearEP.Bind = ap("[::1]:0")
	}
	near := startNode(t, node.Config{
		Endpoint: nearEP,
		Stack:    nearStack(),
		SOCKS:    &socks.Config{Addr: "127.0.0.1:0"},
		Forwards: o.forwards,
	})
	p := &pair{near: near, far: far}
	p.waitUp(t)
	return p
}

// simPair runs the client behind NAT444+NAT64 and the server behind the
// extension gateway, on the simulated network.
func simPair(t *testing.T, o pairOptions) *pair {
	w := newWorld(false, true, 30*time.Second)
	far := startNode(t, node.Config{
		Endpoint: nat64.Config{Mode: nat64.Server, VNI: 42, Local: ap("[2001:db8:b::1]:0"),
			Remote: pf("fdd9:f2f4:ed01::/64"), Listen: w.b.Listen, Keepalive: 200 * time.Millisecond, Key: o.key},
		Stack:    stack.Config{Addrs: farAddrs, Egress: true, EgressLoopback: true},
		Forwards: o.reverses,
	})
	path := nat64.NewTarget("geneve-entry-point.example", 6081)
	near := startNode(t, node.Config{
		Endpoint: nat64.Config{Mode: nat64.Client, VNI: 42, Local: ap("[fdd9:f2f4:ed01::1]:0"), Path: path,
			Remote: pf("2001:db8:b::1/128"), Listen: w.c.Listen, HasIPv4: w.c.HasIPv4, Resolver: w.dns,
			NAT64Prefix: nat64.WellKnownPrefix, Keepalive: 200 * time.Millisecond, Key: o.key},
		Stack:    nearStack(),
		SOCKS:    &socks.Config{Addr: "127.0.0.1:0"},
		Forwards: o.forwards,
	})
	p := &pair{near: near, far: far, world: w}
	p.waitUp(t)
	return p
}

func (p *pair) waitUp(t *testing.T) {
	t.Helper()
	eventually(t, "the tunnel", func() bool { return p.near.Healthy(time.Minute) && p.far.Healthy(time.Minute) })
}

func (p *pair) socksDialer(t *testing.T) proxy.ContextDialer {
	d, err := proxy.SOCKS5("tcp", p.near.SOCKS.Addr().String(), nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	return d.(proxy.ContextDialer)
}

// httpClient goes through the near end's SOCKS proxy; host names are sent
// to the proxy unresolved and resolved inside the tunnel.
func (p *pair) httpClient(t *testing.T) *http.Client {
	d := p.socksDialer(t)
	return &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// farHost is an HTTP server on the test machine's loopback: the far
// site's host, reached through the far end's egress.
type farHost struct {
	ln   net.Listener
	port int
}

// stream writes n pseudo-random bytes from seed.
func stream(w io.Writer, seed uint64, n int64) error {
	r := rand.New(rand.NewPCG(seed, seed))
	buf := make([]byte, 64<<10)
	for n > 0 {
		for i := 0; i < len(buf); i += 8 {
			v := r.Uint64()
			for j := 0; j < 8; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		k := int64(len(buf))
		if n < k {
			k = n
		}
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// streamHashOf is the hex SHA-256 of b.
func streamHashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func streamHash(seed uint64, n int64) string {
	h := sha256.New()
	stream(h, seed, n)
	return hex.EncodeToString(h.Sum(nil))
}

// startFarHost serves GET /download?n=N&seed=S (N pseudo-random bytes) and
// POST /upload (answers the SHA-256 of the body).
func startFarHost(t *testing.T) *farHost {
	// Both loopbacks, one port: egress maps the far end's IPv4 inner
	// address to 127.0.0.1 and its IPv6 one to ::1.
	var ln, ln6 net.Listener
	for i := 0; ; i++ {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln6, err = net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))); err == nil {
			break
		}
		ln.Close()
		if i == 10 {
			t.Fatal(err)
		}
	}
	mux := helperMux()
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	go srv.Serve(ln6)
	t.Cleanup(func() { srv.Close() })
	return &farHost{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
}

func (f *farHost) url(host, path string) string {
	return "http://" + net.JoinHostPort(host, strconv.Itoa(f.port)) + path
}

// download fetches n bytes and checks their hash.
func download(t *testing.T, c *http.Client, url string, seed uint64, n int64) {
	t.Helper()
	resp, err := c.Get(fmt.Sprintf("%s?n=%d&seed=%d", url, n, seed))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	got, err := io.Copy(h, resp.Body)
	if err != nil || got != n {
		t.Fatalf("download: %d of %d bytes, %v", got, n, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != streamHash(seed, n) {
		t.Fatal("download: hash mismatch")
	}
}

// upload sends n bytes and checks the hash the far host computed.
func upload(t *testing.T, c *http.Client, url string, seed uint64, n int64) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(stream(pw, seed, n)) }()
	resp, err := c.Post(url, "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if string(got) != streamHash(seed, n) {
		t.Fatalf("upload: far side hashed %q", got)
	}
}

func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
