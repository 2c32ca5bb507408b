package socks

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	socks5 "github.com/things-go/go-socks5"
	"github.com/things-go/go-socks5/statute"
)

// associate handles UDP ASSOCIATE. The relay socket is bound to the address
// the client reached the proxy on, so BND.ADDR is one the client can use
// (never 0.0.0.0), and it accepts datagrams only from the client that asked:
// its control connection's IP and, once seen (or as the request names it),
// one port. The association lives as long as the control connection.
func (s *Server) associate(ctx context.Context, w io.Writer, req *socks5.Request) error {
	if err := s.admit(w); err != nil {
		return err
	}
	if s.udp.Add(1) > int64(s.cfg.MaxUDPAssociations) {
		s.udp.Add(-1)
		socks5.SendReply(w, statute.RepServerFailure, nil)
		return errors.New("associate: too many UDP associations")
	}
	defer s.udp.Add(-1)
	local, ok1 := req.LocalAddr.(*net.TCPAddr)
	remote, ok2 := req.RemoteAddr.(*net.TCPAddr)
	if !ok1 || !ok2 {
		socks5.SendReply(w, statute.RepServerFailure, nil)
		return errors.New("associate: not a TCP control connection")
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: local.IP})
	if err != nil {
		socks5.SendReply(w, statute.RepServerFailure, nil)
		return err
	}
	if err := socks5.SendReply(w, statute.RepSuccess, pc.LocalAddr()); err != nil {
		pc.Close()
		return err
	}
	clientIP, _ := netip.AddrFromSlice(remote.IP)
	a := &association{s: s, pc: pc, clientIP: clientIP.Unmap()}
	if req.DestAddr != nil && req.DestAddr.Port != 0 {
		a.clientPort = uint16(req.DestAddr.Port)
	}
	actx, cancel := s.requestContext(ctx)
	ran := make(chan struct{})
	go func() { a.run(actx); close(ran) }()
	io.Copy(io.Discard, req.Reader) // until the client closes the control connection
	cancel()
	pc.Close()
	<-ran // inner is set no more
	if a.inner != nil {
		a.inner.Close()
	}
	a.wg.Wait()
	return nil
}

type association struct {
	s          *Server
	pc         *net.UDPConn
	clientIP   netip.Addr
	clientPort uint16 // 0 until the first datagram, unless the request named it

	// inner is the association's one socket inside the tunnel, opened on
	// the first datagram: dual-stack and unconnected, it sends to every
	// target and receives from all of them, so what an association costs
	// does not grow with the number of targets its client names.
	inner net.PacketConn
	// names caches what target names resolved to, at most maxNames.
	names map[string]netip.Addr
	// targets are the addresses the client sent to: replies are relayed
	// from those only, as a connected socket per target would have it.
	mu      sync.Mutex
	targets map[netip.AddrPort]struct{}
	wg      sync.WaitGroup // back
}

// maxNames and maxTargets bound what one association remembers; past
// them, it starts anew.
const (
	maxNames   = 256
	maxTargets = 256
)

func (a *association) run(ctx context.Context) {
	buf := make([]byte, 65535)
	for {
		n, from, err := a.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if from.Addr().Unmap() != a.clientIP || (a.clientPort != 0 && from.Port() != a.clientPort) {
			a.s.log.Debug("SOCKS UDP datagram from a stranger dropped", "from", from)
			continue
		}
		a.clientPort = from.Port()
		pk, err := statute.ParseDatagram(buf[:n])
		if err != nil || pk.Frag != 0 {
			continue // malformed, or fragmented (which we do not reassemble)
		}
		to, err := a.target(ctx, pk.DstAddr)
		if err != nil {
			a.s.log.Debug("SOCKS UDP target unreachable", "target", pk.DstAddr.String(), "err", err)
			continue
		}
		if a.inner == nil {
			if a.inner, err = a.s.nw.ListenPacket("udp", ":0"); err != nil {
				a.s.log.Debug("SOCKS UDP: no socket inside the tunnel", "err", err)
				continue
			}
			a.wg.Add(1)
			go a.back(a.inner, netip.AddrPortFrom(a.clientIP, a.clientPort))
		}
		a.mu.Lock()
		if _, ok := a.targets[to]; !ok {
			if a.targets == nil || len(a.targets) >= maxTargets {
				a.targets = make(map[netip.AddrPort]struct{})
			}
			a.targets[to] = struct{}{}
		}
		a.mu.Unlock()
		a.inner.WriteTo(pk.Data, net.UDPAddrFromAddrPort(to))
	}
}

// target turns a datagram's destination into an address inside the
// tunnel, resolving a name there (and remembering it).
func (a *association) target(ctx context.Context, dst statute.AddrSpec) (netip.AddrPort, error) {
	if dst.FQDN == "" {
		ip, ok := netip.AddrFromSlice(dst.IP)
		if !ok {
			return netip.AddrPort{}, errors.New("no address")
		}
		return netip.AddrPortFrom(ip.Unmap(), uint16(dst.Port)), nil
	}
	if ip, ok := a.names[dst.FQDN]; ok {
		return netip.AddrPortFrom(ip, uint16(dst.Port)), nil
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	addrs, err := a.s.nw.LookupNetIP(lctx, "ip", dst.FQDN)
	cancel()
	if err != nil {
		return netip.AddrPort{}, err
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, errors.New("no address for " + dst.FQDN)
	}
	if a.names == nil || len(a.names) >= maxNames {
		a.names = make(map[string]netip.Addr)
	}
	a.names[dst.FQDN] = addrs[0].Unmap()
	return netip.AddrPortFrom(addrs[0].Unmap(), uint16(dst.Port)), nil
}

// back relays replies from every target to the client, wrapped in the
// SOCKS UDP header naming the address each came from.
func (a *association) back(inner net.PacketConn, client netip.AddrPort) {
	defer a.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := inner.ReadFrom(buf)
		if err != nil {
			return
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		src := netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port())
		a.mu.Lock()
		_, asked := a.targets[src]
		a.mu.Unlock()
		if !asked {
			continue // not a host this client sent to
		}
		d, err := statute.NewDatagram(src.String(), buf[:n])
		if err != nil {
			continue
		}
		if _, err := a.pc.WriteToUDPAddrPort(d.Bytes(), client); err != nil {
			return
		}
	}
}
