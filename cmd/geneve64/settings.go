package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"

	"geneve64/geneve"
	"geneve64/internal/node"
	"geneve64/nat64"
	"geneve64/socks"
	"geneve64/stack"
)

// Settings are an endpoint's settings, from a TOML file (--config) and the
// command line; a flag given on the command line wins. The toml and flag
// names are the same and are part of the interface.
type Settings struct {
	VNI    *int64 `toml:"vni"`
	Local  string `toml:"local"`
	Path   string `toml:"path"`
	Remote string `toml:"remote"`

	Addr        []string      `toml:"addr" flag:"addr"`
	Route       []string      `toml:"route" flag:"route"`
	DNS         []string      `toml:"dns" flag:"dns"`
	SOCKS       string        `toml:"socks" flag:"socks"`
	SOCKSUser   string        `toml:"socks-user" flag:"socks-user"`
	SOCKSPass   string        `toml:"socks-pass" flag:"socks-pass"`
	SOCKSHandTO time.Duration `toml:"socks-handshake-timeout" flag:"socks-handshake-timeout"`
	Forward     []string      `toml:"forward" flag:"forward"`
	Reverse     []string      `toml:"reverse" flag:"reverse"`
	Egress      bool          `toml:"egress" flag:"egress"`
	EgressLoop  bool          `toml:"egress-loopback" flag:"egress-loopback"`
	EgressAllow []string      `toml:"egress-allow" flag:"egress-allow"`
	EgressDeny  []string      `toml:"egress-deny" flag:"egress-deny"`
	SLAAC       bool          `toml:"slaac" flag:"slaac"`
	Payload     string        `toml:"payload" flag:"payload"`
	TAP         string        `toml:"tap" flag:"tap"`
	TUN         string        `toml:"tun" flag:"tun"`
	MTU         int           `toml:"mtu" flag:"mtu"`
	PathMTU     int           `toml:"path-mtu" flag:"path-mtu"`
	Keepalive   time.Duration `toml:"keepalive" flag:"keepalive"`
	NoOption    bool          `toml:"no-option" flag:"no-option"`
	Key         string        `toml:"key" flag:"key"`
	NAT64Prefix string        `toml:"nat64-prefix" flag:"nat64-prefix"`
	MaxPeers    int           `toml:"max-peers" flag:"max-peers"`
	PeerTimeout time.Duration `toml:"peer-timeout" flag:"peer-timeout"`
	MaxAddrs    int           `toml:"max-addrs-per-peer" flag:"max-addrs-per-peer"`
	FloodRate   int           `toml:"flood-rate" flag:"flood-rate"`
	Isolate     bool          `toml:"isolate-peers" flag:"isolate-peers"`
	MaxConns    int           `toml:"max-conns" flag:"max-conns"`
	MaxHandshk  int           `toml:"max-handshakes" flag:"max-handshakes"`
	MaxUDPFlows int           `toml:"max-udp-flows" flag:"max-udp-flows"`
	MaxPerPeer  int           `toml:"max-flows-per-peer" flag:"max-flows-per-peer"`
	UDPIdle     time.Duration `toml:"udp-idle" flag:"udp-idle"`
	Metrics     string        `toml:"metrics" flag:"metrics"`
	LogLevel    string        `toml:"log-level" flag:"log-level"`
	LogFormat   string        `toml:"log-format" flag:"log-format"`
}

// The shortest keepalive interval and peer timeout accepted: shorter ones
// are typing mistakes (1ns for 1s) that would flood peers or forget them
// between two packets.
const (
	minKeepalive   = time.Second
	minPeerTimeout = time.Second
)

func defaultSettings() Settings {
	return Settings{Payload: "ethernet", PathMTU: 1500, Keepalive: nat64.DefaultKeepalive, SOCKSHandTO: socks.DefaultHandshakeTimeout,
		MaxConns: socks.DefaultMaxConns, MaxHandshk: stack.DefaultMaxInFlightTCP, MaxUDPFlows: stack.DefaultMaxUDPFlows,
		MaxPerPeer: stack.DefaultMaxFlowsPerPeer, UDPIdle: stack.DefaultUDPIdle,
		MaxPeers: nat64.DefaultMaxPeers, PeerTimeout: nat64.DefaultPeerTimeout,
		MaxAddrs: nat64.DefaultMaxAddrsPerPeer, FloodRate: nat64.DefaultGroupRate, LogLevel: "info", LogFormat: "text"}
}

// registerFlags binds the endpoint flags to s.
func registerFlags(fs *pflag.FlagSet, s *Settings) {
	d := defaultSettings()
	*s = d
	fs.StringArrayVar(&s.Addr, "addr", nil, "inner address of the netstack, CIDR (repeatable), e.g. 10.42.0.2/24, fd42::2/64")
	fs.StringArrayVar(&s.Route, "route", nil, "inner route CIDR[@NEXTHOP] (repeatable), e.g. 0.0.0.0/0@10.42.0.1")
	fs.StringArrayVar(&s.DNS, "dns", nil, "DNS server inside the tunnel (repeatable); none: the host's resolver")
	fs.StringVar(&s.SOCKS, "socks", "", "start SOCKS5 on ADDR, e.g. 127.0.0.1:1080 (a bare port means loopback)")
	fs.StringVar(&s.SOCKSUser, "socks-user", "", "SOCKS5 username (with --socks-pass)")
	fs.StringVar(&s.SOCKSPass, "socks-pass", "", "SOCKS5 password")
	fs.DurationVar(&s.SOCKSHandTO, "socks-handshake-timeout", d.SOCKSHandTO, "SOCKS5: close a client that has not finished its greeting, authentication and request in this long (at least 1s)")
	fs.StringArrayVar(&s.Forward, "forward", nil, "[tcp|udp/]HOSTADDR=INNERADDR: listen on the host, connect through the tunnel (repeatable)")
	fs.StringArrayVar(&s.Reverse, "reverse", nil, "[tcp|udp/]INNERADDR=HOSTADDR: listen in the tunnel, connect on the host (repeatable)")
	fs.BoolVar(&s.Egress, "egress", false, "serve flows from peers out of this host (not to its loopback, link-local, multicast, broadcast or unspecified addresses), and DNS on port 53")
	fs.BoolVar(&s.EgressLoop, "egress-loopback", false, "egress: flows to this end's own inner address reach the same port on the host's loopback")
	fs.StringArrayVar(&s.EgressAllow, "egress-allow", nil, "egress: CIDR[:PORT[-PORT]] (repeatable); inside a refused range opens it, elsewhere narrows egress to the allowed")
	fs.StringArrayVar(&s.EgressDeny, "egress-deny", nil, "egress: CIDR[:PORT[-PORT]] never reached (repeatable); wins over --egress-allow")
	fs.BoolVar(&s.SLAAC, "slaac", false, "configure inner IPv6 addresses and routes from router advertisements (the far end is a site router)")
	fs.StringVar(&s.Payload, "payload", d.Payload, "inner payload: ethernet or ip")
	fs.StringVar(&s.TAP, "tap", "", "Linux: join this TAP device to the tunnel, beside the netstack (none without --addr); made once by root for the user: ip tuntap add dev NAME mode tap user UID")
	fs.StringVar(&s.TUN, "tun", "", "Linux: as --tap, a TUN device, with --payload ip")
	fs.IntVar(&s.MTU, "mtu", 0, "inner MTU (default: from --path-mtu less every header)")
	fs.IntVar(&s.PathMTU, "path-mtu", d.PathMTU, "outer path MTU the inner MTU is computed from")
	fs.DurationVar(&s.Keepalive, "keepalive", d.Keepalive, "OAM keepalive interval when idle, at least 1s; 0 turns keepalives off")
	fs.BoolVar(&s.NoOption, "no-option", false, "plain GENEVE without the NAT64 option, for peers such as Open vSwitch")
	fs.StringVar(&s.Key, "key", "", "authenticate every packet with the key in FILE (base64 or hex, the same on both ends; the file must be readable by its owner only)")
	fs.StringVar(&s.NAT64Prefix, "nat64-prefix", "", "NAT64 prefix for IPv4 PATHs (default: discovered by RFC 7050)")
	fs.IntVar(&s.MaxPeers, "max-peers", d.MaxPeers, "server: most clients at once")
	fs.DurationVar(&s.PeerTimeout, "peer-timeout", d.PeerTimeout, "server: forget a client silent this long (at least 1s)")
	fs.IntVar(&s.MaxAddrs, "max-addrs-per-peer", d.MaxAddrs, "server: inner MACs (IP addresses with --payload ip) the switch learns behind one client; a new one replaces its oldest")
	fs.IntVar(&s.FloodRate, "flood-rate", d.FloodRate, "server: broadcast, multicast and unknown frames a second one client may flood to the others")
	fs.BoolVar(&s.Isolate, "isolate-peers", false, "server: frames go between each client and this end only, never client to client")
	fs.IntVar(&s.MaxConns, "max-conns", d.MaxConns, "most SOCKS5 clients past their handshake at once; more are refused")
	fs.IntVar(&s.MaxHandshk, "max-handshakes", d.MaxHandshk, "egress: most TCP handshakes in progress; more SYNs are dropped")
	fs.IntVar(&s.MaxUDPFlows, "max-udp-flows", d.MaxUDPFlows, "egress: most UDP flows at once; more are dropped")
	fs.IntVar(&s.MaxPerPeer, "max-flows-per-peer", d.MaxPerPeer, "egress: most TCP and UDP flows from one inner address")
	fs.DurationVar(&s.UDPIdle, "udp-idle", d.UDPIdle, "end UDP flows (egress, forwards) idle this long; a SOCKS5 UDP association lasts as long as its control connection")
	fs.StringVar(&s.Metrics, "metrics", "", "serve Prometheus /metrics and /healthz on ADDR")
	fs.StringVar(&s.LogLevel, "log-level", d.LogLevel, "debug, info, warn or error")
	fs.StringVar(&s.LogFormat, "log-format", d.LogFormat, "text or json")
}

// merge returns the file's settings (or the defaults) with every flag the
// command line changed laid over them.
func merge(fs *pflag.FlagSet, flags Settings, file string) (Settings, error) {
	if file == "" {
		return flags, nil
	}
	out := defaultSettings()
	md, err := toml.DecodeFile(file, &out)
	if err != nil {
		return Settings{}, usagef("--config %q: %v", file, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		return Settings{}, usagef("--config %q: unknown setting %q", file, un[0].String())
	}
	fv, ov := reflect.ValueOf(flags), reflect.ValueOf(&out).Elem()
	for i := 0; i < fv.NumField(); i++ {
		if name := fv.Type().Field(i).Tag.Get("flag"); name != "" && fs.Changed(name) {
			ov.Field(i).Set(fv.Field(i))
		}
	}
	return out, nil
}

// usageError is a bad argument: the command prints its usage line and exits 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// positional fills VNI, LOCAL, PATH and REMOTE from the command line,
// which wins over the file.
func (s *Settings) positional(mode nat64.Mode, args []string) error {
	names := []string{"VNI", "LOCAL", "PATH", "REMOTE"}
	if mode == nat64.Server {
		names = []string{"VNI", "LOCAL", "REMOTE"}
	}
	if len(args) > len(names) {
		return usagef("too many arguments: %q", args[len(names):])
	}
	for i, a := range args {
		switch names[i] {
		case "VNI":
			v, err := strconv.ParseInt(a, 10, 64)
			if err != nil {
				return usagef("VNI %q: not a number", a)
			}
			s.VNI = &v
		case "LOCAL":
			s.Local = a
		case "PATH":
			s.Path = a
		case "REMOTE":
			s.Remote = a
		}
	}
	for _, n := range names {
		missing := (n == "VNI" && s.VNI == nil) || (n == "LOCAL" && s.Local == "") ||
			(n == "PATH" && s.Path == "") || (n == "REMOTE" && s.Remote == "")
		if missing {
			return usagef("missing %s", n)
		}
	}
	return nil
}

// nodeConfig checks every setting and builds the node's configuration.
// Every error names the setting and the value.
func (s *Settings) nodeConfig(mode nat64.Mode) (node.Config, error) {
	var c node.Config
	ec := &c.Endpoint
	ec.Mode = mode
	if *s.VNI < 0 || *s.VNI > geneve.MaxVNI {
		return c, usagef("VNI %d out of range 0..%d", *s.VNI, geneve.MaxVNI)
	}
	ec.VNI = uint32(*s.VNI)
	var err error
	if ec.Local, err = parseAddrPort("LOCAL", s.Local); err != nil {
		return c, usageError{err}
	}
	if ec.Remote, err = parseRemote(s.Remote); err != nil {
		return c, usageError{err}
	}
	if mode != nat64.Server {
		if ec.Path, err = parseTarget(s.Path, geneve.Port); err != nil {
			return c, usageError{err}
		}
	}
	ec.NoOption = s.NoOption
	if s.Key != "" {
		if ec.Key, err = readKeyFile(s.Key); err != nil {
			return c, usagef("--key %q: %w", s.Key, err)
		}
	}
	if !s.NoOption {
		if !ec.Local.Addr().Is6() {
			return c, usagef("LOCAL %q: must be an IPv6 address (the NAT64 option carries IPv6 identities; --no-option for plain GENEVE)", s.Local)
		}
		if !ec.Remote.Addr().Is6() {
			return c, usagef("REMOTE %q: must be IPv6 (the NAT64 option carries IPv6 identities; --no-option for plain GENEVE)", s.Remote)
		}
	}
	if mode != nat64.Server && !ec.Remote.IsSingleIP() {
		return c, usagef("REMOTE %q: only a server accepts a prefix of peers", s.Remote)
	}
	switch strings.ToLower(s.Payload) {
	case "ethernet", "eth":
		ec.Protocol = geneve.ProtocolEthernet
	case "ip":
		ec.Protocol = geneve.ProtocolIPv4
	default:
		return c, usagef("--payload %q: want ethernet or ip", s.Payload)
	}
	// 0 is the one value that means something other than a duration: no
	// keepalives. Anything else below a second would flood the peer.
	ec.Keepalive = s.Keepalive
	if s.Keepalive == 0 {
		ec.Keepalive = -1
	} else if s.Keepalive < minKeepalive {
		return c, usagef("--keepalive %s: want 0 (off) or at least %s", s.Keepalive, minKeepalive)
	}
	if s.PeerTimeout < minPeerTimeout {
		return c, usagef("--peer-timeout %s: want at least %s", s.PeerTimeout, minPeerTimeout)
	}
	if s.MaxPeers < 1 {
		return c, usagef("--max-peers %d: must be at least 1", s.MaxPeers)
	}
	ec.MaxPeers, ec.PeerTimeout = s.MaxPeers, s.PeerTimeout
	if s.MaxAddrs < 1 {
		return c, usagef("--max-addrs-per-peer %d: must be at least 1", s.MaxAddrs)
	}
	if s.FloodRate < 1 {
		return c, usagef("--flood-rate %d: must be at least 1", s.FloodRate)
	}
	ec.MaxAddrsPerPeer, ec.GroupRate, ec.IsolatePeers = s.MaxAddrs, s.FloodRate, s.Isolate
	if s.NAT64Prefix != "" {
		if ec.NAT64Prefix, err = netip.ParsePrefix(s.NAT64Prefix); err != nil {
			return c, usagef("--nat64-prefix %q: not a prefix", s.NAT64Prefix)
		}
		if err := nat64.CheckPrefix(ec.NAT64Prefix); err != nil {
			return c, usagef("--nat64-prefix %q: %v", s.NAT64Prefix, err)
		}
	}

	sc := &c.Stack
	sc.TCP = knobs.TCP
	v6 := false
	for _, a := range s.Addr {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return c, usagef("--addr %q: not a CIDR address such as 10.42.0.2/24", a)
		}
		sc.Addrs = append(sc.Addrs, p)
		v6 = v6 || p.Addr().Is6()
	}
	for _, r := range s.Route {
		rt, err := stack.ParseRoute(r)
		if err != nil {
			return c, usagef("--route: %v", err)
		}
		sc.Routes = append(sc.Routes, rt)
	}
	for _, d := range s.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return c, usagef("--dns %q: not an IP address", d)
		}
		sc.DNS = append(sc.DNS, a)
	}
	sc.Egress, sc.SLAAC, sc.EgressLoopback = s.Egress, s.SLAAC, s.EgressLoop
	if sc.EgressAllow, err = parseEgressRules("--egress-allow", s.EgressAllow); err != nil {
		return c, err
	}
	if sc.EgressDeny, err = parseEgressRules("--egress-deny", s.EgressDeny); err != nil {
		return c, err
	}
	if !s.Egress && (s.EgressLoop || len(s.EgressAllow)+len(s.EgressDeny) > 0) {
		return c, usageError{errors.New("--egress-loopback, --egress-allow and --egress-deny shape --egress, which is not on")}
	}
	for name, v := range map[string]int{"--max-conns": s.MaxConns, "--max-handshakes": s.MaxHandshk,
		"--max-udp-flows": s.MaxUDPFlows, "--max-flows-per-peer": s.MaxPerPeer} {
		if v < 1 {
			return c, usagef("%s %d: must be at least 1", name, v)
		}
	}
	if s.UDPIdle < time.Second {
		return c, usagef("--udp-idle %s: must be at least 1s", s.UDPIdle)
	}
	sc.MaxInFlightTCP, sc.MaxUDPFlows, sc.MaxFlowsPerPeer, sc.UDPIdle = s.MaxHandshk, s.MaxUDPFlows, s.MaxPerPeer, s.UDPIdle
	c.UDPIdle = s.UDPIdle
	if s.SLAAC && ec.Protocol != geneve.ProtocolEthernet {
		return c, usageError{errors.New("--slaac needs --payload ethernet: router advertisements travel on a link")}
	}
	if s.MTU != 0 && (s.MTU < 576 || s.MTU > 65521 || (v6 && s.MTU < 1280)) {
		return c, usagef("--mtu %d: want 576..65521, and at least 1280 with IPv6 inside", s.MTU)
	}
	sc.MTU = s.MTU
	if s.PathMTU < 576 || s.PathMTU > 65535 {
		return c, usagef("--path-mtu %d: want 576..65535", s.PathMTU)
	}
	c.PathMTU = s.PathMTU

	if s.SOCKS != "" {
		addr, err := socks.LoopbackDefault(s.SOCKS)
		if err != nil {
			return c, usagef("--socks %q: %v", s.SOCKS, err)
		}
		if s.SOCKSHandTO < time.Second {
			return c, usagef("--socks-handshake-timeout %s: want at least 1s", s.SOCKSHandTO)
		}
		c.SOCKS = &socks.Config{Addr: addr, User: s.SOCKSUser, Pass: s.SOCKSPass, MaxConns: s.MaxConns,
			HandshakeTimeout: s.SOCKSHandTO}
	} else if s.SOCKSUser != "" {
		return c, usagef("--socks-user %q: given without --socks", s.SOCKSUser)
	}
	for _, spec := range s.Forward {
		f, err := socks.ParseForward(spec, false)
		if err != nil {
			return c, usagef("--forward: %v", err)
		}
		c.Forwards = append(c.Forwards, f)
	}
	for _, spec := range s.Reverse {
		f, err := socks.ParseForward(spec, true)
		if err != nil {
			return c, usagef("--reverse: %v", err)
		}
		c.Forwards = append(c.Forwards, f)
	}
	if s.Metrics != "" {
		if _, _, err := net.SplitHostPort(s.Metrics); err != nil {
			return c, usagef("--metrics %q: want HOST:PORT", s.Metrics)
		}
	}
	switch {
	case s.TAP != "" && s.TUN != "":
		return c, usagef("--tap %q and --tun %q: choose one", s.TAP, s.TUN)
	case s.TAP != "" && ec.Protocol != geneve.ProtocolEthernet:
		return c, usagef("--tap %q needs --payload ethernet: a TAP carries Ethernet frames (--tun carries IP)", s.TAP)
	case s.TUN != "" && ec.Protocol == geneve.ProtocolEthernet:
		return c, usagef("--tun %q needs --payload ip: a TUN carries IP packets (--tap carries Ethernet)", s.TUN)
	}
	c.Device = s.TAP + s.TUN
	if len(sc.Addrs) == 0 && !sc.SLAAC && (c.SOCKS != nil || len(c.Forwards) > 0 || sc.Egress) {
		return c, usageError{errors.New("--addr (or --slaac) is needed for SOCKS, forwards and egress: the netstack has no address")}
	}
	return c, nil
}

// parseEgressRules parses the values of an --egress-allow or --egress-deny
// flag.
func parseEgressRules(flag string, specs []string) ([]stack.EgressRule, error) {
	var rules []stack.EgressRule
	for _, spec := range specs {
		r, err := stack.ParseEgressRule(spec)
		if err != nil {
			return nil, usagef("%s: %v", flag, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}
