// Package node wires one geneve64 endpoint together: the outer transport
// (nat64), the netstack (stack) and the front-ends (socks). It is its own
// package so that the command, its demo and the end-to-end tests all run
// exactly the same wiring.
package node

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"geneve64/geneve"
	"geneve64/internal/bridge"
	"geneve64/internal/tundev"
	"geneve64/nat64"
	"geneve64/socks"
	"geneve64/stack"
)

// Config is everything one endpoint runs.
type Config struct {
	// Endpoint is the outer side: mode, VNI, LOCAL, PATH, REMOTE and the rest.
	Endpoint nat64.Config
	// Stack is the inner network; its Payload, MAC and (when 0) MTU are
	// derived from the endpoint.
	Stack stack.Config
	// PathMTU is the outer path MTU the inner MTU is computed from (default 1500).
	PathMTU int
	// SOCKS, when set, starts a SOCKS5 proxy.
	SOCKS *socks.Config
	// Forwards are port forwards, local and reverse.
	Forwards []socks.Forward
	// UDPIdle ends idle UDP forward flows (socks.DefaultUDPIdle).
	UDPIdle time.Duration
	// Device, when set, is a kernel TAP (Ethernet payloads) or TUN (IP
	// payloads) joined to the tunnel beside the netstack. With a device
	// and no inner address, no netstack runs: a pure bridge.
	Device string
	// Logger is shared by every part.
	Logger *slog.Logger
}

// Node is a running endpoint.
type Node struct {
	Endpoint *nat64.Endpoint
	Stack    *stack.Stack // nil on a pure bridge to a Device
	Device   *Device
	SOCKS    *socks.Server
	Forwards []*socks.Forwarder
	log      *slog.Logger
	once     sync.Once
	err      error
}

// Start builds and starts every part, or none: on an error, what it had
// started is closed before it returns.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Endpoint.Logger = cfg.Logger
	cfg.Stack.Logger = cfg.Logger
	// n is not the named result: "return nil, err" must not hide from this
	// cleanup what was started.
	n := &Node{log: cfg.Logger}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.Endpoint, err = nat64.NewEndpoint(ctx, cfg.Endpoint); err != nil {
		return nil, err
	}
	sc := cfg.Stack
	if n.Endpoint.Protocol() == geneve.ProtocolEthernet {
		sc.Payload = stack.Ethernet
		sc.MAC = stack.MACFromIdentity(cfg.Endpoint.Local.Addr(), sc.Addrs)
	} else {
		sc.Payload = stack.IP
	}
	if sc.MTU == 0 {
		sc.MTU = innerMTU(cfg, n.Endpoint, sc)
	}
	if cfg.Device == "" {
		if n.Stack, err = stack.New(n.Endpoint, sc); err != nil {
			return nil, err
		}
		n.Endpoint.Start(n.Stack)
		n.log.Info("inner network up", "addrs", sc.Addrs, "mtu", sc.MTU, "egress", sc.Egress)
	} else if err := n.startBridge(cfg.Device, sc); err != nil {
		return nil, err
	}
	if cfg.SOCKS != nil {
		sc := *cfg.SOCKS
		sc.Logger = cfg.Logger
		if n.SOCKS, err = socks.Listen(n.Stack, sc); err != nil {
			return nil, err
		}
		n.log.Info("SOCKS5 listening", "addr", n.SOCKS.Addr().String())
	}
	for _, f := range cfg.Forwards {
		fw, err := socks.StartForward(n.Stack, f, cfg.UDPIdle, cfg.Logger)
		if err != nil {
			return nil, err
		}
		n.Forwards = append(n.Forwards, fw)
		n.log.Info("forward listening", "forward", f.String(), "addr", fw.Addr().String())
	}
	return n, nil
}

// startBridge joins a kernel device and, when the node has inner
// addresses, the netstack to the endpoint through a bridge.
func (n *Node) startBridge(name string, sc stack.Config) error {
	kind := tundev.TAP
	if sc.Payload == stack.IP {
		kind = tundev.TUN
	}
	var err error
	if n.Device, err = openDevice(name, kind, sc.MTU, n.log); err != nil {
		return err
	}
	br := bridge.New(n.Endpoint, sc.Payload == stack.Ethernet)
	if len(sc.Addrs) > 0 || sc.SLAAC {
		sp := br.Add("netstack")
		if n.Stack, err = stack.New(sp, sc); err != nil {
			return err
		}
		sp.Attach(n.Stack)
	}
	n.Device.start(br.Add(name))
	n.Endpoint.Start(br)
	n.log.Info("inner network up", "device", name, "kind", kind.String(), "addrs", sc.Addrs, "mtu", sc.MTU, "netstack", n.Stack != nil)
	return nil
}

// innerMTU computes the inner MTU from the outer path MTU and every header.
func innerMTU(cfg Config, ep *nat64.Endpoint, sc stack.Config) int {
	path := cfg.PathMTU
	if path == 0 {
		path = 1500
	}
	innerV6 := false
	for _, a := range sc.Addrs {
		innerV6 = innerV6 || a.Addr().Is6()
	}
	outerV6 := true
	if ps := ep.Peers(); len(ps) > 0 && ps[0].Path.IsValid() {
		outerV6 = !ps[0].Path.Addr().Unmap().Is4()
	} else if la := ep.LocalAddr().Addr(); la.Is4() {
		outerV6 = false
	}
	mtu := stack.InnerMTU(path, outerV6, ep.Overhead(), sc.Payload, innerV6)
	if mtu < 576 {
		mtu = 576
	}
	return mtu
}

// Close stops accepting, closes forwards and SOCKS with their connections,
// then the stack and the outer socket, and returns once every goroutine
// the node started has ended. Calling it again, or at once from another
// goroutine, waits the same way.
func (n *Node) Close() error {
	n.once.Do(func() {
		var errs []error
		for _, f := range n.Forwards {
			errs = append(errs, f.Close())
		}
		if n.SOCKS != nil {
			errs = append(errs, n.SOCKS.Close())
		}
		if n.Device != nil {
			errs = append(errs, n.Device.close())
		}
		if n.Stack != nil {
			errs = append(errs, n.Stack.Close())
		}
		if n.Endpoint != nil {
			errs = append(errs, n.Endpoint.Close())
		}
		n.err = errors.Join(errs...)
	})
	return n.err
}

// Healthy reports whether a peer was heard from within d.
func (n *Node) Healthy(d time.Duration) bool {
	for _, p := range n.Endpoint.Peers() {
		if !p.LastSeen.IsZero() && time.Since(p.LastSeen) < d {
			return true
		}
	}
	return false
}
