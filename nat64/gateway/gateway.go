package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"geneve64/internal/tundev"
	"geneve64/nat64"
	"geneve64/nat64/udpbatch"
)

// Config configures a gateway.
type Config struct {
	// Rules are the extension's rules: NAT64 prefix, public IPv4 address,
	// port and allowed IPv6 prefixes.
	Rules nat64.GatewayRules
	// TUN is the name of the TUN device for the IPv6 side.
	TUN string
	// MTU is the site link's MTU: larger inbound packets are fragmented
	// (default 1500).
	MTU int
	// Logger receives the gateway's log; slog.Default() by default.
	Logger *slog.Logger
}

// Gateway relays GENEVE between the IPv4 internet and IPv6 hosts.
type Gateway struct {
	cfg   Config
	tun   *tundev.Device // the IPv6 side: whole IPv6 packets in and out
	v4    *udpbatch.UDPConn
	log   *slog.Logger
	stats nat64.Stats
	// In and Out count packets relayed to IPv6 hosts and to the IPv4 internet.
	In, Out atomic.Uint64
	// Fragments counts IPv6 fragments read from the TUN, which the gateway
	// does not reassemble.
	Fragments atomic.Uint64
	refused   nat64.GatewayRefusalCounts
	fragID    atomic.Uint32
	wg        sync.WaitGroup
	once      sync.Once
}

// batch is how many packets move per system call on the IPv4 socket and
// per wake-up on the TUN.
const batch = 64

// Start opens the TUN and the IPv4 socket and starts relaying.
func Start(cfg Config) (*Gateway, error) {
	if err := cfg.Rules.Check(); err != nil {
		return nil, err
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.MTU < minIPv6LinkMTU {
		return nil, fmt.Errorf("gateway: MTU %d is below IPv6's minimum of %d", cfg.MTU, minIPv6LinkMTU)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger}
	g.cfg.Rules.Stats, g.cfg.Rules.Refused = &g.stats, &g.refused
	// With a virtio_net_hdr on every packet, a run of datagrams for one
	// site host is one write of one UDP GSO packet (see inbound).
	tun, err := tundev.OpenVnet(cfg.TUN, tundev.TUN, "gateway")
	if err != nil {
		return nil, err
	}
	g.tun = tun
	port := cfg.Rules.Port
	if port == 0 {
		port = 6081
	}
	laddr := netip.AddrPortFrom(cfg.Rules.IPv4, port)
	// TTLs: the gateway decrements them as a router does, instead of
	// starting the IPv6 hop limit afresh, so a packet that loops dies.
	if g.v4, err = (udpbatch.ListenConfig{TTL: true}).Listen(laddr); err != nil {
		tun.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.log.Info("gateway listening", "ipv4", g.v4.LocalAddr().String(), "tun", cfg.TUN, "prefix", cfg.Rules.Prefix, "allowed", cfg.Rules.Allowed)
	g.wg.Add(2)
	go g.inbound()
	go g.outbound()
	return g, nil
}

// SocketDrops is how many datagrams for the gateway the kernel dropped
// because its IPv4 socket's receive buffer was full.
func (g *Gateway) SocketDrops() uint64 { return g.v4.Drops() }

// TUNDrops is how many packets from the site the kernel dropped because
// the TUN's queue towards the gateway was full.
func (g *Gateway) TUNDrops() uint64 { return g.tun.Dropped() }

// Stats are the gateway's drop counters.
func (g *Gateway) Stats() *nat64.Stats { return &g.stats }

// Refused counts the destinations the gateway would not relay to, by reason.
func (g *Gateway) Refused() *nat64.GatewayRefusalCounts { return &g.refused }

// Close stops relaying.
func (g *Gateway) Close() error {
	g.once.Do(func() {
		g.v4.Close()
		g.tun.Close()
		g.wg.Wait()
	})
	return nil
}

// inbound: IPv4 GENEVE to the public address → IPv6 host named in the
// option. Datagrams come in batches; a run of them from one sender to one
// site host, of one size, goes into the TUN as one UDP GSO packet: one
// write, one packet through the kernel's forwarding, cut into datagrams
// (checksums included) only where it must be.
func (g *Gateway) inbound() {
	defer g.wg.Done()
	msgs := make([]udpbatch.Message, batch)
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, udpbatch.MaxDatagram)
	}
	res := make([]inboundResult, batch)
	out := make([]byte, 0, udpbatch.MaxDatagram+ipv6HeaderLen+udpHeaderLen)
	frag := make([]byte, 0, g.cfg.MTU)
	write := func(p []byte) error {
		_, err := g.tun.Write(p)
		return err
	}
	local := g.v4.LocalAddr()
	gso := true
	for {
		for i := range msgs {
			msgs[i].Buf = bufs[i]
		}
		n, err := g.v4.ReadBatch(msgs)
		if err != nil {
			if udpbatch.IsClosed(err) {
				return
			}
			g.log.Warn("gateway IPv4 read failed", "err", err)
			continue
		}
		// The rules once per datagram, then runs.
		for i := range msgs[:n] {
			m := &msgs[i]
			r := &res[i]
			var ok bool
			r.src, r.dst, _, ok = g.cfg.Rules.Inbound(m.Addr, local, m.Buf[:m.N])
			r.ok = ok
			if !ok {
				continue
			}
			if r.hop, r.ok = decrement(m.TTL); !r.ok {
				g.refuse(nat64.RefusedHopLimit)
			}
		}
		for i := 0; i < n; {
			if !res[i].ok {
				i++
				continue
			}
			j := i + 1
			if gso {
				j = g.run(msgs[:n], res[:n], i)
			}
			if j-i == 1 {
				m := &msgs[i]
				out = appendIPv6UDP(out[:0], res[i].src, res[i].dst, m.Buf[:m.N])
				out[7] = res[i].hop // the hop limit, outside the UDP checksum
				if err := fragment(out, g.cfg.MTU, g.fragID.Add(1), frag, write); err != nil {
					g.log.Debug("gateway TUN write failed", "to", res[i].dst, "err", err)
					g.stats.Drop(nat64.DropSendError)
				} else {
					g.In.Add(1)
				}
				i++
				continue
			}
			out = g.appendRun(out[:0], msgs[i:j], &res[i])
			if err := g.tun.WriteUDPGSO(out, msgs[i].N); err != nil {
				// A kernel without UDP segmentation from a TUN: one
				// packet per write from now on.
				g.log.Info("gateway: the TUN takes no UDP GSO packets; writing one datagram at a time", "err", err)
				gso = false
				continue
			}
			g.In.Add(uint64(j - i))
			i = j
		}
	}
}

// inboundResult is what the rules made of one inbound datagram.
type inboundResult struct {
	src, dst netip.AddrPort
	hop      uint8
	ok       bool
}

// run returns the end of the run of datagrams starting at i that can go
// as one GSO packet: relayed, from one sender to one host with one hop
// limit, of one size but for a shorter last one, each fitting the site
// link whole, at most 64 and 64 KiB in all.
func (g *Gateway) run(msgs []udpbatch.Message, res []inboundResult, i int) int {
	size := msgs[i].N
	if ipv6HeaderLen+udpHeaderLen+size > g.cfg.MTU {
		return i + 1
	}
	total := size
	j := i + 1
	for ; j < len(msgs) && j-i < 64; j++ {
		r, m := &res[j], &msgs[j]
		if !r.ok || r.src != res[i].src || r.dst != res[i].dst || r.hop != res[i].hop || m.N > size || m.N == 0 ||
			udpHeaderLen+total+m.N > 0xffff {
			break
		}
		total += m.N
		if m.N < size {
			j++
			break // only the last may be shorter
		}
	}
	return j
}

// appendRun appends one IPv6 UDP packet carrying msgs' payloads back to
// back, its UDP checksum field holding the pseudo-header's sum over the
// whole length, as the kernel's own UDP GSO sends do.
func (g *Gateway) appendRun(dst []byte, msgs []udpbatch.Message, r *inboundResult) []byte {
	total := 0
	for i := range msgs {
		total += msgs[i].N
	}
	start := len(dst)
	dst = appendIPv6UDPHeader(dst, r.src, r.dst, r.hop, total)
	s, d := r.src.Addr().As16(), r.dst.Addr().As16()
	binary.BigEndian.PutUint16(dst[start+ipv6HeaderLen+6:], fold(pseudoSum(s[:], d[:], udpHeaderLen+total)))
	for i := range msgs {
		dst = append(dst, msgs[i].Buf[:msgs[i].N]...)
	}
	return dst
}

// outbound: IPv6 GENEVE from an allowed host's port 6081 → the IPv4
// internet, read from the TUN as many as are ready and sent in one batch.
func (g *Gateway) outbound() {
	defer g.wg.Done()
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, udpbatch.MaxDatagram)
	}
	sizes := make([]int, batch)
	msgs := make([]udpbatch.Message, 0, batch)
	for {
		n, err := g.tun.ReadBatch(bufs, sizes)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			g.log.Warn("gateway TUN read failed", "err", err)
			return
		}
		msgs = msgs[:0]
		for i := range n {
			p := bufs[i][g.tun.HeaderLen():sizes[i]]
			src, dst, payload, err := parseIPv6UDP(p)
			if err != nil {
				if errors.Is(err, errFragment) {
					g.Fragments.Add(1)
					g.stats.Drop(nat64.DropMalformed)
				}
				continue
			}
			// The source the rules give is the gateway's IPv4:port,
			// which the socket is bound to.
			_, d4, _, ok := g.cfg.Rules.Outbound(src, dst, payload)
			if !ok {
				continue
			}
			ttl, ok := decrement(p[7]) // the IPv6 hop limit
			if !ok {
				g.refuse(nat64.RefusedHopLimit)
				continue
			}
			msgs = append(msgs, udpbatch.Message{Buf: payload, Addr: d4, TTL: ttl})
		}
		if len(msgs) == 0 {
			continue
		}
		sent, err := g.v4.WriteBatch(msgs)
		g.Out.Add(uint64(sent))
		if err != nil {
			g.log.Debug("gateway IPv4 send failed", "to", msgs[sent].Addr, "err", err)
			for range len(msgs) - sent {
				g.stats.Drop(nat64.DropSendError)
			}
		}
	}
}

// decrement is what a router does to a TTL or hop limit: the next hop's
// value, or false when the packet must not go on. 0 means the kernel did
// not say, and the packet starts afresh at 64.
func decrement(hop uint8) (uint8, bool) {
	switch hop {
	case 0:
		return defaultHopLimit, true
	case 1:
		return 0, false
	}
	return hop - 1, true
}

func (g *Gateway) refuse(why nat64.GatewayRefusal) {
	g.refused[why].Add(1)
	g.stats.Drop(nat64.DropForbidden)
}
