package socks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	socks5 "github.com/things-go/go-socks5"
	"github.com/things-go/go-socks5/statute"

	"geneve64/internal/relay"
	"geneve64/internal/workers"
)

// Config configures a SOCKS5 server.
type Config struct {
	// Addr to listen on, e.g. "127.0.0.1:1080"; a bare port binds loopback.
	Addr string
	// User and Pass, when User is set, require username/password
	// authentication (RFC 1929).
	User, Pass string
	// MaxConns bounds client connections past their handshake
	// (DefaultMaxConns); more are answered with a general failure.
	MaxConns int
	// HandshakeTimeout is how long a client has to finish its greeting,
	// authentication and request (default 10 s).
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds connections still in their handshake
	// (DefaultMaxHandshakes); past it the oldest is closed, so that silent
	// connections never keep a real client out.
	MaxHandshakes int
	// MaxUDPAssociations bounds UDP ASSOCIATE sessions at once
	// (DefaultMaxUDPAssociations); each holds two 64 KiB buffers however
	// many targets it names.
	MaxUDPAssociations int
	// Logger receives the server's log; slog.Default() by default.
	Logger *slog.Logger
}

// Server is a SOCKS5 proxy into the inner network.
type Server struct {
	cfg   Config
	nw    Network
	ln    net.Listener
	srv   *socks5.Server
	log   *slog.Logger
	conns connSet
	done  chan struct{}
	// ctx ends with the server: the library gives each request a
	// background context, so dials and look-ups take theirs from this one,
	// and Close cancels them instead of waiting out their timeouts.
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	err    error
	hs     *handshakes
	udp    atomic.Int64 // UDP associations open now
}

// Defaults for Config fields left zero, and for forwards' UDP idle time.
const (
	DefaultMaxConns           = 4096
	DefaultHandshakeTimeout   = 10 * time.Second
	DefaultMaxHandshakes      = 256
	DefaultMaxUDPAssociations = 256
	DefaultUDPIdle            = 2 * time.Minute
)

// Listen starts a SOCKS5 server on cfg.Addr whose CONNECT and UDP
// ASSOCIATE reach targets through nw; domain names are resolved inside the
// tunnel. Addresses other than loopback without a username log a warning:
// anyone who reaches the port may use the tunnel.
func Listen(nw Network, cfg Config) (*Server, error) {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxHandshakes <= 0 {
		cfg.MaxHandshakes = DefaultMaxHandshakes
	}
	if cfg.MaxUDPAssociations <= 0 {
		cfg.MaxUDPAssociations = DefaultMaxUDPAssociations
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	addr, err := LoopbackDefault(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("socks: %w", err)
	}
	ln, err := listenTCP(addr)
	if err != nil {
		return nil, fmt.Errorf("socks: %w", err)
	}
	s := &Server{cfg: cfg, nw: nw, ln: ln, log: cfg.Logger.With("socks", ln.Addr().String()), done: make(chan struct{}),
		hs: newHandshakes(cfg.MaxHandshakes, cfg.HandshakeTimeout)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if !isLoopbackAddr(ln.Addr()) && cfg.User == "" {
		s.log.Warn("SOCKS5 listens beyond loopback without a username and password: anyone who reaches it can use the tunnel")
	}
	s.srv = s.newLibServer()
	go s.serve()
	return s, nil
}

// newLibServer configures go-socks5 with our resolver, handlers and logger.
func (s *Server) newLibServer() *socks5.Server {
	opts := []socks5.Option{
		socks5.WithResolver(tunnelResolver{s.nw, s.ctx}),
		socks5.WithConnectHandle(s.connect),
		socks5.WithAssociateHandle(s.associate),
		socks5.WithLogger(debugLogger{s.log}),
	}
	if s.cfg.User != "" {
		opts = append(opts, socks5.WithCredential(socks5.StaticCredentials{s.cfg.User: s.cfg.Pass}))
	}
	return socks5.NewServer(opts...)
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Active is the number of client connections open now.
func (s *Server) Active() int64 { return s.conns.active.Load() }

// Total is the number of client connections accepted so far.
func (s *Server) Total() uint64 { return s.conns.total.Load() }

// Close stops accepting, cancels dials under way, closes every client
// connection and waits for them. Calling it again, or at once from another
// goroutine, waits the same way.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.err = s.ln.Close()
		<-s.done
		s.conns.closeAll()
	})
	return s.err
}

// admit ends a client's handshake, once its request has arrived: past
// MaxConns established connections, the request is answered with a
// general failure.
func (s *Server) admit(w io.Writer) error {
	c, ok := w.(net.Conn)
	if ok && s.hs.finish(c, s.cfg.MaxConns) {
		return nil
	}
	socks5.SendReply(w, statute.RepServerFailure, nil)
	s.log.Debug("SOCKS request refused: connection limit reached", "limit", s.cfg.MaxConns)
	return errConnLimit
}

var errConnLimit = errors.New("socks: connection limit reached")

// requestContext is ctx, also cancelled when the server closes.
func (s *Server) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	rctx, cancel := context.WithCancel(s.ctx)
	stop := context.AfterFunc(ctx, cancel)
	return rctx, func() { stop(); cancel() }
}

func (s *Server) serve() {
	defer close(s.done)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("SOCKS accept failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !s.conns.add(c) {
			return
		}
		s.hs.start(c)
		workers.Go(func() {
			defer s.conns.done(c)
			defer s.hs.end(c)
			if err := s.srv.ServeConn(c); err != nil {
				s.log.Debug("SOCKS connection ended", "client", c.RemoteAddr(), "err", err)
			}
		})
	}
}

// connect handles CONNECT: dial through the tunnel, then relay with half-close.
func (s *Server) connect(ctx context.Context, w io.Writer, req *socks5.Request) error {
	if err := s.admit(w); err != nil {
		return err
	}
	rctx, cancelReq := s.requestContext(ctx)
	dctx, cancel := context.WithTimeout(rctx, 30*time.Second)
	target, err := s.nw.DialContext(dctx, "tcp", req.DestAddr.String())
	cancel()
	cancelReq()
	if err != nil {
		rep := statute.RepHostUnreachable
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			rep = statute.RepConnectionRefused
		case errors.Is(err, syscall.ENETUNREACH):
			rep = statute.RepNetworkUnreachable
		}
		socks5.SendReply(w, rep, nil)
		return fmt.Errorf("connect to %s: %w", req.DestAddr, err)
	}
	if err := socks5.SendReply(w, statute.RepSuccess, target.LocalAddr()); err != nil {
		target.Close()
		return err
	}
	client, ok := w.(net.Conn)
	if !ok {
		target.Close()
		return errors.New("socks: client is not a connection")
	}
	if !s.conns.attach(client, target) {
		return net.ErrClosed
	}
	// Bytes the client sent ahead of our reply sit in the handshake's
	// buffer; with none there the relay reads the socket itself, which
	// lets it wait without a buffer.
	var from net.Conn = client
	if b, ok := req.Reader.(interface{ Buffered() int }); !ok || b.Buffered() > 0 {
		from = &bufferedConn{Conn: client, r: req.Reader}
	}
	relay.Stream(from, target)
	return nil
}

// bufferedConn reads through the bufio.Reader the SOCKS handshake used, so
// bytes the client sent early are not lost, and keeps half-close.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

// Read reads through the handshake's buffer.
func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the client connection, or closes it where it cannot.
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// tunnelResolver resolves SOCKS domain-name targets inside the tunnel,
// until the server (done) closes.
type tunnelResolver struct {
	nw   Network
	done context.Context
}

// Resolve implements go-socks5's NameResolver through the tunnel's DNS.
func (r tunnelResolver) Resolve(ctx context.Context, name string) (context.Context, net.IP, error) {
	lctx, cancel := context.WithCancel(r.done)
	defer context.AfterFunc(ctx, cancel)()
	defer cancel()
	addrs, err := r.nw.LookupNetIP(lctx, "ip", name)
	if err != nil {
		return ctx, nil, err
	}
	if len(addrs) == 0 {
		return ctx, nil, fmt.Errorf("no address for %s", name)
	}
	// Prefer IPv4: inner networks are more often IPv4 than not.
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return ctx, net.IP(a.Unmap().AsSlice()), nil
		}
	}
	return ctx, net.IP(addrs[0].AsSlice()), nil
}

// debugLogger sends the library's messages to slog at debug level: they
// are per-connection events, and normal closes are not errors.
type debugLogger struct{ l *slog.Logger }

// Errorf implements go-socks5's Logger.
func (d debugLogger) Errorf(format string, args ...any) {
	d.l.Debug("socks5: " + fmt.Sprintf(format, args...))
}

// LoopbackDefault turns a bare port ("1080" or ":1080") into a loopback
// address: front-ends listen on loopback unless told otherwise.
func LoopbackDefault(addr string) (string, error) {
	if !strings.Contains(addr, ":") {
		addr = ":" + addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	// A service name ("socks") is left to the listener to look up; a
	// number must fit a port.
	if _, err := strconv.ParseUint(port, 10, 16); err != nil && (port == "" || isDigits(port)) {
		return "", fmt.Errorf("address %q: port %q: want 0..65535", addr, port)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
