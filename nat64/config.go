package nat64

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"geneve64/geneve"
	"geneve64/nat64/udpbatch"
)

// Mode is how an endpoint finds its path to the peer; see docs/PROTOCOL.md.
type Mode uint8

// The modes of the original proof of concept, plus auto.
const (
	Symmetric Mode = iota + 1 // fixed PATH both ways; both NAT64s have the extension
	Server                    // paths learned from clients; many clients
	Client                    // LOCAL is an identity only; PATH may be a hostname or IPv4
	Auto                      // symmetric that also learns the path like a server
)

var modeNames = map[Mode]string{Symmetric: "symmetric", Server: "server", Client: "client", Auto: "auto"}

// String returns the mode's command-line name.
func (m Mode) String() string {
	if s, ok := modeNames[m]; ok {
		return s
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode parses a mode's command-line name.
func ParseMode(s string) (Mode, error) {
	for m, n := range modeNames {
		if strings.EqualFold(s, n) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("mode %q: want symmetric, server, client or auto", s)
}

// Resolver looks up hostnames; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Defaults for [Config] fields left zero.
const (
	DefaultKeepalive   = 25 * time.Second
	DefaultMaxPeers    = 64
	DefaultPeerTimeout = 3 * time.Minute
	// DefaultMaxAddrsPerPeer, DefaultAddrAge and DefaultGroupRate are the
	// switch's per-peer bounds.
	DefaultMaxAddrsPerPeer = 32
	DefaultAddrAge         = 5 * time.Minute
	DefaultGroupRate       = 200
	// silentAfter keepalive intervals without a valid packet, a peer is silent.
	silentAfter = 3
)

// Config describes an endpoint. The first five fields are the positional
// arguments of the original proof of concept.
type Config struct {
	Mode Mode
	// VNI is the 24-bit virtual network identifier both ends use.
	VNI uint32
	// Local is this end's identity and, unless Bind says otherwise, the
	// address bound in symmetric, server and auto modes. Its port, if not
	// zero, is the outer port (else 6081, or ephemeral in client mode).
	Local netip.AddrPort
	// Path is where packets go (not used by a server).
	Path Target
	// Remote is the peer's identity: one address, or for a server a prefix
	// of accepted client identities.
	Remote netip.Prefix

	// Protocol is the inner payload type: geneve.ProtocolEthernet (default),
	// ProtocolIPv4 or ProtocolIPv6 (plain IP, either family accepted).
	Protocol uint16
	// NoOption sends and expects plain GENEVE without the NAT64 option, for
	// peers such as Open vSwitch. Addresses may then be IPv4.
	NoOption bool
	// Keepalive is the OAM echo interval when idle: 25 s by default; a
	// negative value turns keepalives off.
	Keepalive time.Duration
	// MaxPeers caps a server's peers (default 64).
	MaxPeers int
	// PeerTimeout expires a server's peers heard from no longer (default 3 min).
	PeerTimeout time.Duration
	// MaxAddrsPerPeer bounds the inner addresses (MACs, or IP addresses
	// with IP payloads) a server's switch learns behind one peer (default
	// 32); a new one replaces the peer's oldest. AddrAge forgets an
	// address not heard from for that long (default 5 min, as Linux's
	// bridge).
	MaxAddrsPerPeer int
	AddrAge         time.Duration
	// GroupRate bounds the broadcast and multicast frames a server floods
	// from one peer to the others, per second (default 200; bursts of
	// twice that pass).
	GroupRate int
	// IsolatePeers keeps a server's peers apart: frames go between each
	// peer and the server's own inner network only, never peer to peer.
	IsolatePeers bool
	// NAT64Prefix reaches IPv4 PATHs from an IPv6-only host; when not set
	// and one is needed, it is discovered by RFC 7050.
	NAT64Prefix netip.Prefix
	// DNSServer is asked for RFC 7050 discovery; "" means the system resolver.
	DNSServer string
	// Key, when set (at least MinKeyLen bytes, the same on both ends),
	// authenticates every packet; see ParseKey and docs/SECURITY.md.
	Key []byte

	// Bind overrides the address and port the outer socket binds to.
	Bind netip.AddrPort
	// Listen opens the outer socket; ListenUDP by default.
	Listen ListenFunc
	// Resolver resolves a hostname PATH; net.DefaultResolver by default.
	Resolver Resolver
	// HasIPv4 reports whether this host reaches an IPv4 address directly,
	// without NAT64; by default it asks the routing table.
	HasIPv4 func(netip.Addr) bool
	// Logger receives the endpoint's log; slog.Default() by default.
	Logger *slog.Logger
}

// check validates c and fills in defaults.
func (c *Config) check() error {
	if _, ok := modeNames[c.Mode]; !ok {
		return fmt.Errorf("nat64: mode %d unknown", c.Mode)
	}
	if c.VNI > geneve.MaxVNI {
		return fmt.Errorf("nat64: VNI %d out of range 0..%d", c.VNI, geneve.MaxVNI)
	}
	if !c.Local.Addr().IsValid() {
		return fmt.Errorf("nat64: LOCAL is not set")
	}
	if !c.Remote.IsValid() {
		return fmt.Errorf("nat64: REMOTE is not set")
	}
	if !c.NoOption {
		if !c.Local.Addr().Is6() {
			return fmt.Errorf("nat64: LOCAL %s must be an IPv6 address (the NAT64 option carries IPv6 identities; set NoOption for plain GENEVE)", c.Local.Addr())
		}
		if !c.Remote.Addr().Is6() {
			return fmt.Errorf("nat64: REMOTE %s must be IPv6 (the NAT64 option carries IPv6 identities; set NoOption for plain GENEVE)", c.Remote)
		}
	}
	if c.Mode != Server && !c.Remote.IsSingleIP() {
		return fmt.Errorf("nat64: REMOTE %s: only a server accepts a prefix of peers", c.Remote)
	}
	if c.Mode != Server && !c.Path.Addr.IsValid() && c.Path.Host == "" {
		return fmt.Errorf("nat64: PATH is not set")
	}
	switch c.Protocol {
	case 0:
		c.Protocol = geneve.ProtocolEthernet
	case geneve.ProtocolEthernet, geneve.ProtocolIPv4, geneve.ProtocolIPv6:
	default:
		return fmt.Errorf("nat64: payload protocol %#04x: want Ethernet (0x6558), IPv4 (0x0800) or IPv6 (0x86dd)", c.Protocol)
	}
	if c.Keepalive == 0 {
		c.Keepalive = DefaultKeepalive
	}
	if c.MaxPeers <= 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	if c.PeerTimeout <= 0 {
		c.PeerTimeout = DefaultPeerTimeout
	}
	if c.MaxAddrsPerPeer <= 0 {
		c.MaxAddrsPerPeer = DefaultMaxAddrsPerPeer
	}
	if c.AddrAge <= 0 {
		c.AddrAge = DefaultAddrAge
	}
	if c.GroupRate <= 0 {
		c.GroupRate = DefaultGroupRate
	}
	if c.NAT64Prefix.IsValid() {
		if err := CheckPrefix(c.NAT64Prefix); err != nil {
			return fmt.Errorf("NAT64 prefix: %w", err)
		}
	}
	if c.Key != nil && len(c.Key) < MinKeyLen {
		return fmt.Errorf("%w: %d bytes, need at least %d", ErrKey, len(c.Key), MinKeyLen)
	}
	if c.Listen == nil {
		c.Listen = udpbatch.ListenUDP
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// bindAddr is where the outer socket binds: LOCAL in symmetric, server and
// auto modes; a wildcard in client mode, where LOCAL is an identity only.
func (c *Config) bindAddr() netip.AddrPort {
	if c.Bind.IsValid() {
		return c.Bind
	}
	port := c.Local.Port()
	if c.Mode == Client {
		wild := netip.IPv6Unspecified()
		if c.NoOption && c.Local.Addr().Is4() {
			wild = netip.IPv4Unspecified()
		}
		return netip.AddrPortFrom(wild, port) // port 0: ephemeral, kept for the session
	}
	if port == 0 {
		port = geneve.Port
	}
	return netip.AddrPortFrom(c.Local.Addr(), port)
}

// ListenFunc opens the outer connection of an endpoint bound to laddr.
type ListenFunc func(laddr netip.AddrPort) (udpbatch.PacketConn, error)
