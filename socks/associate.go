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

// maxUDPFlowsPerAssociation bounds the targets one client may talk to at once.
const maxUDPFlowsPerAssociation = 256

// associate handles UDP ASSOCIATE. The relay socket is bound to the address
// the client reached the proxy on, so BND.ADDR is one the client can use
// (never 0.0.0.0), and it accepts datagrams only from the client that asked:
// its control connection's IP and, once seen (or as the request names it),
// one port. The association lives as long as the control connection.
func (s *Server) associate(ctx context.Context, w io.Writer, req *socks5.Request) error {
	if err := s.admit(w); err != nil {
		return err
	}
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
	a := &association{s: s, pc: pc, clientIP: clientIP.Unmap(), flows: make(map[string]net.Conn)}
	if req.DestAddr != nil && req.DestAddr.Port != 0 {
		a.clientPort = uint16(req.DestAddr.Port)
	}
	actx, cancel := s.requestContext(ctx)
	a.wg.Add(1)
	go a.run(actx)
	io.Copy(io.Discard, req.Reader) // until the client closes the control connection
	cancel()
	pc.Close()
	a.closeFlows()
	a.wg.Wait()
	return nil
}

type association struct {
	s          *Server
	pc         *net.UDPConn
	clientIP   netip.Addr
	clientPort uint16 // 0 until the first datagram, unless the request named it

	mu    sync.Mutex
	flows map[string]net.Conn
	wg    sync.WaitGroup
}

func (a *association) run(ctx context.Context) {
	defer a.wg.Done()
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
		target := pk.DstAddr.String()
		flow, err := a.flow(ctx, target, netip.AddrPortFrom(a.clientIP, a.clientPort))
		if err != nil {
			a.s.log.Debug("SOCKS UDP target unreachable", "target", target, "err", err)
			continue
		}
		flow.Write(pk.Data)
	}
}

// flow returns the inner UDP socket for target, dialing it on first use.
func (a *association) flow(ctx context.Context, target string, client netip.AddrPort) (net.Conn, error) {
	a.mu.Lock()
	c := a.flows[target]
	n := len(a.flows)
	a.mu.Unlock()
	if c != nil {
		return c, nil
	}
	if n >= maxUDPFlowsPerAssociation {
		return nil, errors.New("too many UDP targets")
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := a.s.nw.DialContext(dctx, "udp", target)
	cancel()
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.flows[target] = c
	a.mu.Unlock()
	a.wg.Add(1)
	go a.back(target, c, client)
	return c, nil
}

// back relays replies from target to the client, wrapped in the SOCKS UDP
// header naming the address they came from, until the flow is idle.
func (a *association) back(target string, c net.Conn, client netip.AddrPort) {
	defer a.wg.Done()
	defer func() {
		a.mu.Lock()
		delete(a.flows, target)
		a.mu.Unlock()
		c.Close()
	}()
	from := c.RemoteAddr().String()
	buf := make([]byte, 65535)
	for {
		c.SetReadDeadline(time.Now().Add(a.s.cfg.UDPIdle))
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		d, err := statute.NewDatagram(from, buf[:n])
		if err != nil {
			return
		}
		if _, err := a.pc.WriteToUDPAddrPort(d.Bytes(), client); err != nil {
			return
		}
	}
}

func (a *association) closeFlows() {
	a.mu.Lock()
	for _, c := range a.flows {
		c.Close()
	}
	a.mu.Unlock()
}
