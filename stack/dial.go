package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/net/dns/dnsmessage"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"geneve64/internal/dnsclient"
)

// resolver looks names up through the DNS servers inside the tunnel, in
// turn until one answers. It never reads the host's hosts file: a name
// means what the far side's DNS says. With no server configured, names go
// to the host's resolver instead.
type resolver struct {
	st   *Stack
	next atomic.Uint32
}

func newResolver(st *Stack) *resolver {
	if len(st.cfg.DNS) == 0 {
		st.log.Info("no DNS server inside the tunnel configured: names resolve with the host's resolver")
	}
	return &resolver{st: st}
}

// LookupNetIP resolves host through the tunnel's DNS; network is "ip",
// "ip4" or "ip6". IPv4 addresses come first.
func (st *Stack) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	if len(st.cfg.DNS) == 0 {
		return net.DefaultResolver.LookupNetIP(ctx, network, host)
	}
	var types []dnsmessage.Type
	switch network {
	case "ip":
		types = []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA}
	case "ip4":
		types = []dnsmessage.Type{dnsmessage.TypeA}
	case "ip6":
		types = []dnsmessage.Type{dnsmessage.TypeAAAA}
	default:
		return nil, &net.DNSError{Err: "unknown network " + network, Name: host}
	}
	results := make([][]netip.Addr, len(types))
	errs := make([]error, len(types))
	var wg sync.WaitGroup
	for i, qt := range types {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = st.dns.lookup(ctx, host, qt)
		}()
	}
	wg.Wait()
	var out []netip.Addr
	for _, r := range results {
		out = append(out, r...)
	}
	if len(out) > 0 {
		return out, nil
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (r *resolver) lookup(ctx context.Context, host string, qt dnsmessage.Type) ([]netip.Addr, error) {
	servers := r.st.cfg.DNS
	start := int(r.next.Add(1))
	var last error
	for i := range servers {
		srv := netip.AddrPortFrom(servers[(start+i)%len(servers)], 53)
		dial := func(ctx context.Context, network string) (net.Conn, error) {
			return r.st.dialAddr(ctx, network, srv)
		}
		addrs, err := dnsclient.Lookup(ctx, dial, host, qt)
		var de *net.DNSError
		if err == nil || (errors.As(err, &de) && de.IsNotFound) {
			return addrs, err
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, last
}

// DialContext connects to address ("host:port") inside the tunnel over
// network "tcp", "tcp4", "tcp6", "udp", "udp4" or "udp6", like
// net.Dialer.DialContext. Names are resolved through the tunnel's DNS.
func (st *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("port %q: %w", portStr, err)}
	}
	family := "ip"
	switch network {
	case "tcp4", "udp4":
		family = "ip4"
	case "tcp6", "udp6":
		family = "ip6"
	case "tcp", "udp":
	default:
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	addrs, err := st.LookupNetIP(ctx, family, host)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var first error
	for _, a := range addrs {
		c, err := st.dialAddr(ctx, network, netip.AddrPortFrom(a, uint16(port)))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

func (st *Stack) dialAddr(ctx context.Context, network string, ap netip.AddrPort) (net.Conn, error) {
	full := tcpip.FullAddress{NIC: nicID, Addr: tcpipAddr(ap.Addr()), Port: ap.Port()}
	proto := protocolOf(ap.Addr())
	switch network[:3] {
	case "tcp":
		c, err := st.dialTCP(ctx, full, proto)
		if err != nil {
			return nil, err // not a nil *TCPConn in a non-nil net.Conn
		}
		return c, nil
	case "udp":
		return gonet.DialUDP(st.s, nil, &full, proto)
	}
	return nil, net.UnknownNetworkError(network)
}

// dialTCP connects a TCP endpoint to full, honouring ctx.
func (st *Stack) dialTCP(ctx context.Context, full tcpip.FullAddress, proto tcpip.NetworkProtocolNumber) (*TCPConn, error) {
	var wq waiter.Queue
	ep, terr := st.s.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errnoOf(terr)}
	}
	// Connect always answers "started"; the end of the handshake shows as
	// the endpoint becoming writable.
	entry, connected := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	if err := ctx.Err(); err != nil {
		ep.Close()
		return nil, err
	}
	// The local port is ours to pick (ports.go says why), bound with the
	// source address the route gives: gVisor releases a bound port under
	// the connection's local address, so a port bound to the wildcard
	// address would never be released.
	r, terr := st.s.FindRoute(0, tcpip.Address{}, full.Addr, proto, false)
	if terr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: tcpAddr(full), Err: errnoOf(terr)}
	}
	local := r.LocalAddress()
	r.Release()
	// With every port taken (by connections in TIME-WAIT, say), gVisor's
	// own pick, which may reuse a port in TIME-WAIT, is the fallback.
	st.ports.pick(full, func(port uint16) bool { return ep.Bind(tcpip.FullAddress{Addr: local, Port: port}) == nil })
	terr = ep.Connect(full)
	if _, ok := terr.(*tcpip.ErrConnectStarted); ok {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, ctx.Err()
		case <-connected:
		}
		terr = ep.LastError()
	}
	if terr != nil {
		// As the net package's errors do, name the local port too: it
		// tells one failed attempt from another in a capture.
		var src net.Addr
		if la, err := ep.GetLocalAddress(); err == nil && la.Port != 0 {
			src = tcpAddr(la)
		}
		ep.Close()
		return nil, &net.OpError{Op: "connect", Net: "tcp", Source: src, Addr: tcpAddr(full), Err: errnoOf(terr)}
	}
	return newTCPConn(&wq, ep), nil
}

// tcpAddr is a as the net package gives a TCP address.
func tcpAddr(a tcpip.FullAddress) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IP(a.Addr.AsSlice()), Port: int(a.Port)}
}

// Listen listens for TCP connections inside the tunnel on address
// ("addr:port", or ":port" for every inner address).
func (st *Stack) Listen(network, address string) (net.Listener, error) {
	full, proto, err := st.localAddr(network, address, "tcp")
	if err != nil {
		return nil, err
	}
	l, err := st.listenTCP(full, proto)
	if err != nil {
		return nil, err // not a nil *tcpListener in a non-nil net.Listener
	}
	return l, nil
}

// ListenPacket opens a UDP socket inside the tunnel on address.
func (st *Stack) ListenPacket(network, address string) (net.PacketConn, error) {
	full, proto, err := st.localAddr(network, address, "udp")
	if err != nil {
		return nil, err
	}
	return gonet.DialUDP(st.s, &full, nil, proto)
}

func (st *Stack) localAddr(network, address, want string) (tcpip.FullAddress, tcpip.NetworkProtocolNumber, error) {
	if len(network) < 3 || network[:3] != want {
		return tcpip.FullAddress{}, 0, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return tcpip.FullAddress{}, 0, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return tcpip.FullAddress{}, 0, &net.OpError{Op: "listen", Net: network, Err: fmt.Errorf("port %q: %w", portStr, err)}
	}
	full := tcpip.FullAddress{NIC: nicID, Port: uint16(port)}
	if host == "" || host == "::" || host == "0.0.0.0" {
		// An IPv6 wildcard endpoint in gVisor is dual-stack: IPv4 too.
		if network[len(network)-1] == '4' {
			return full, protocolOf(netip.IPv4Unspecified()), nil
		}
		return full, ipv6.ProtocolNumber, nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return tcpip.FullAddress{}, 0, &net.OpError{Op: "listen", Net: network, Err: errors.New("address must be an IP literal")}
	}
	a = a.Unmap()
	full.Addr = tcpipAddr(a)
	return full, protocolOf(a), nil
}
