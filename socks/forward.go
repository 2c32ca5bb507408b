package socks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"geneve64/internal/relay"
	"geneve64/internal/workers"
)

// Forward is one port forward. Local forwards (--forward) listen on the
// host and connect through the tunnel; reverse forwards (--reverse) listen
// inside the tunnel and connect on the host.
type Forward struct {
	// Proto is "tcp" or "udp".
	Proto string
	// Reverse is set for a remote-to-local forward.
	Reverse bool
	// Listen is where it listens: a host address for a local forward, an
	// inner one for a reverse forward.
	Listen string
	// Target is where it connects: inside the tunnel, or on the host.
	Target string
}

// String formats f as it would be given on the command line.
func (f Forward) String() string {
	dir := "forward"
	if f.Reverse {
		dir = "reverse"
	}
	return fmt.Sprintf("%s %s/%s=%s", dir, f.Proto, f.Listen, f.Target)
}

// ParseForward parses "[tcp|udp/]LISTEN=TARGET": for a local forward
// HOSTADDR=INNERADDR, for a reverse one INNERADDR=HOSTADDR. A bare port on
// the host side means loopback.
func ParseForward(spec string, reverse bool) (Forward, error) {
	f := Forward{Proto: "tcp", Reverse: reverse}
	rest := spec
	if p, r, ok := strings.Cut(spec, "/"); ok && (p == "tcp" || p == "udp") {
		f.Proto, rest = p, r
	} else if ok && !strings.Contains(p, ":") && !strings.Contains(p, "=") {
		return Forward{}, fmt.Errorf("forward %q: protocol %q: want tcp or udp", spec, p)
	}
	l, t, ok := strings.Cut(rest, "=")
	if !ok || l == "" || t == "" {
		return Forward{}, fmt.Errorf("forward %q: want [tcp|udp/]LISTEN=TARGET", spec)
	}
	var err error
	hostSide := &f.Listen
	if reverse {
		hostSide = &f.Target
	}
	f.Listen, f.Target = l, t
	if *hostSide, err = LoopbackDefault(*hostSide); err != nil {
		return Forward{}, fmt.Errorf("forward %q: %w", spec, err)
	}
	for _, a := range []string{f.Listen, f.Target} {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return Forward{}, fmt.Errorf("forward %q: %q is not HOST:PORT", spec, a)
		}
	}
	return f, nil
}

// Forwarder runs one forward.
type Forwarder struct {
	f     Forward
	nw    Network
	log   *slog.Logger
	ln    net.Listener   // TCP
	pc    net.PacketConn // UDP
	conns connSet
	idle  time.Duration
	done  chan struct{}
	// ctx ends with the forward: dials under way are cancelled by Close
	// instead of holding it for their whole timeout.
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	err    error
}

// StartForward starts f over nw. UDP flows end after idle without traffic
// (default 2 min).
func StartForward(nw Network, f Forward, idle time.Duration, log *slog.Logger) (*Forwarder, error) {
	if idle <= 0 {
		idle = DefaultUDPIdle
	}
	if log == nil {
		log = slog.Default()
	}
	fw := &Forwarder{f: f, nw: nw, log: log.With("forward", f.String()), idle: idle, done: make(chan struct{})}
	fw.ctx, fw.cancel = context.WithCancel(context.Background())
	var err error
	switch {
	case f.Proto == "tcp" && !f.Reverse:
		fw.ln, err = listenTCP(f.Listen)
	case f.Proto == "tcp":
		fw.ln, err = nw.Listen("tcp", f.Listen)
	case !f.Reverse:
		fw.pc, err = net.ListenPacket("udp", f.Listen)
	default:
		fw.pc, err = nw.ListenPacket("udp", f.Listen)
	}
	if err != nil {
		fw.cancel()
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	if !f.Reverse && !isLoopbackAddr(fw.Addr()) {
		fw.log.Warn("forward listens beyond loopback: anyone who reaches it can use the tunnel", "addr", fw.Addr().String())
	}
	if fw.ln != nil {
		go fw.serveTCP()
	} else {
		go fw.serveUDP()
	}
	return fw, nil
}

// Addr is where the forward listens.
func (fw *Forwarder) Addr() net.Addr {
	if fw.ln != nil {
		return fw.ln.Addr()
	}
	return fw.pc.LocalAddr()
}

// Active is the number of connections (TCP) or flows (UDP) open now.
func (fw *Forwarder) Active() int64 { return fw.conns.active.Load() }

// Close stops the forward, cancels its dials under way and ends its
// connections; it returns once all of them have ended. Calling it again, or
// at once from another goroutine, waits the same way.
func (fw *Forwarder) Close() error {
	fw.once.Do(func() {
		fw.cancel()
		if fw.ln != nil {
			fw.err = fw.ln.Close()
		} else {
			fw.err = fw.pc.Close()
		}
		<-fw.done
		fw.conns.closeAll()
	})
	return fw.err
}

func (fw *Forwarder) dial(ctx context.Context, network string) (net.Conn, error) {
	if fw.f.Reverse {
		var d net.Dialer
		return d.DialContext(ctx, network, fw.f.Target)
	}
	return fw.nw.DialContext(ctx, network, fw.f.Target)
}

func (fw *Forwarder) serveTCP() {
	defer close(fw.done)
	for {
		c, err := fw.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				fw.log.Warn("accept failed", "err", err)
			}
			return
		}
		if !fw.conns.add(c) {
			return
		}
		workers.Go(func() {
			defer fw.conns.done(c)
			ctx, cancel := context.WithTimeout(fw.ctx, 30*time.Second)
			t, err := fw.dial(ctx, "tcp")
			cancel()
			if err != nil {
				fw.log.Debug("forward target unreachable", "err", err)
				c.Close()
				return
			}
			if !fw.conns.attach(c, t) {
				c.Close()
				return
			}
			if fw.f.Reverse {
				relay.Stream(t, c) // c is the netstack's side
			} else {
				relay.Stream(c, t)
			}
		})
	}
}

// serveUDP relays datagrams: each source seen on the listening socket gets
// its own connected socket towards the target, ended when idle.
func (fw *Forwarder) serveUDP() {
	defer close(fw.done)
	var mu sync.Mutex
	flows := make(map[string]net.Conn)
	buf := make([]byte, 65535)
	for {
		n, from, err := fw.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		key := from.String()
		mu.Lock()
		c := flows[key]
		mu.Unlock()
		if c == nil {
			ctx, cancel := context.WithTimeout(fw.ctx, 10*time.Second)
			c, err = fw.dial(ctx, "udp")
			cancel()
			if err != nil {
				fw.log.Debug("forward target unreachable", "err", err)
				continue
			}
			if !fw.conns.add(c) {
				return
			}
			mu.Lock()
			flows[key] = c
			mu.Unlock()
			go func(c net.Conn, from net.Addr) {
				defer fw.conns.done(c)
				defer func() {
					mu.Lock()
					delete(flows, key)
					mu.Unlock()
					c.Close()
				}()
				back := make([]byte, 65535)
				for {
					c.SetReadDeadline(time.Now().Add(fw.idle))
					n, err := c.Read(back)
					if err != nil {
						return
					}
					if _, err := fw.pc.WriteTo(back[:n], from); err != nil {
						return
					}
				}
			}(c, from)
		}
		c.Write(buf[:n])
	}
}
