package nat64

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"geneve64/geneve"
	"geneve64/nat64/udpbatch"
)

// An InnerLink consumes the inner frames an endpoint receives: the netstack,
// or a test. DeliverFrames is called from the endpoint's receive goroutine
// with a batch of payloads (GENEVE stripped) that stay valid only until it
// returns.
type InnerLink interface {
	DeliverFrames(frames [][]byte)
}

// An Endpoint is the outer side of a tunnel endpoint: it sends inner frames
// to its peers as GENEVE over UDP with the NAT64 option, and delivers the
// valid frames it receives to its [InnerLink].
type Endpoint struct {
	cfg   Config
	conn  udpbatch.PacketConn
	log   *slog.Logger
	start time.Time
	stats Stats
	inner InnerLink

	mu     sync.RWMutex
	peers  map[netip.AddrPort]*peer // server: by identity (or outer address without the option)
	single *peer                    // the one peer of the other modes
	sw     *switchTable             // server only
	// fullLogged: the peer table's being full was logged; cleared when a
	// peer expires, so the log says it once per episode.
	fullLogged atomic.Bool

	// Authenticated mode: auth signs and verifies, authOff is where the
	// authentication option starts in every packet, known lists the options
	// this endpoint understands, and windows keeps each sender's replay
	// window. Windows outlive peers, so a frame replayed after its peer
	// expired is still refused.
	auth      *authenticator
	authOff   int
	known     geneve.KnownOptions
	windowsMu sync.Mutex
	windows   map[windowKey]*replayWindow

	prefixMu sync.Mutex
	prefix   netip.Prefix // NAT64 prefix in use, once needed
	basePath netip.AddrPort

	batches sync.Pool // *sendBatch
	closed  chan struct{}
	// ctx ends at Close: work in the background (resolving PATH again)
	// is cancelled rather than waited out.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	// scratch is the maintenance pass's list of peers, kept between
	// passes; maintainMu makes the passes one at a time.
	maintainMu sync.Mutex
	scratch    []*peer

	// now is the clock every timer reads (see clock); tests replace it,
	// before Start, to step time exactly instead of sleeping.
	now func() int64
}

// NewEndpoint validates cfg, binds the outer socket and resolves PATH. The
// endpoint does nothing until [Endpoint.Start].
func NewEndpoint(ctx context.Context, cfg Config) (*Endpoint, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	e := &Endpoint{
		cfg:    cfg,
		log:    cfg.Logger.With("mode", cfg.Mode.String()),
		start:  time.Now(),
		closed: make(chan struct{}),
		prefix: cfg.NAT64Prefix,
	}
	e.now = func() int64 { return int64(time.Since(e.start)) + 1 }
	e.ctx, e.cancel = context.WithCancel(context.Background())
	conn, err := cfg.Listen(cfg.bindAddr())
	if err != nil {
		e.cancel()
		return nil, fmt.Errorf("nat64: %w", err)
	}
	e.conn = conn
	e.batches.New = func() any { return newSendBatch(conn.BatchSize()) }
	e.known = KnownOptions
	if cfg.Key != nil {
		e.auth = newAuthenticator(cfg.Key)
		e.authOff = geneve.HeaderLen
		if !cfg.NoOption {
			e.authOff += OptionLen
		}
		e.known = append(geneve.KnownOptions{{Class: AuthClass, Type: AuthType}}, KnownOptions...)
		e.windows = make(map[windowKey]*replayWindow)
	}
	if cfg.Mode == Server {
		e.peers = make(map[netip.AddrPort]*peer)
		e.sw = newSwitchTable(cfg.MaxAddrsPerPeer, cfg.AddrAge)
		return e, nil
	}
	path, err := e.resolvePath(ctx)
	if err != nil {
		conn.Close()
		e.cancel()
		return nil, err
	}
	e.basePath = path
	e.single = e.newPeer(cfg.Remote.Addr(), netip.AddrPortFrom(cfg.Remote.Addr(), 0), path)
	return e, nil
}

// Start delivers received frames to inner and starts the receive and
// keepalive goroutines. Endpoints that know their path send a first echo
// request at once, so the far end learns the path and NATs open a mapping.
func (e *Endpoint) Start(inner InnerLink) {
	e.inner = inner
	e.log.Info("outer socket listening", "addr", e.conn.LocalAddr(), "vni", e.cfg.VNI,
		"local", e.cfg.Local.Addr(), "remote", e.cfg.Remote)
	if e.single != nil {
		path, _ := e.single.currentPath()
		e.log.Info("sending to peer", "identity", e.single.id, "path", path)
		if e.cfg.Keepalive > 0 {
			b := e.getBatch()
			e.enqueueProbe(b, e.single, e.clock())
			e.flush(b)
			e.putBatch(b)
		}
	}
	e.wg.Add(2)
	go e.receiveLoop()
	go e.maintainLoop()
}

// Close stops the endpoint and closes its socket.
func (e *Endpoint) Close() error {
	var err error
	e.once.Do(func() {
		close(e.closed)
		e.cancel()
		err = e.conn.Close()
		e.wg.Wait()
	})
	return err
}

// LocalAddr is the outer socket's address.
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.conn.LocalAddr() }

// Stats are the endpoint's counters.
func (e *Endpoint) Stats() *Stats { return &e.stats }

// Mode is the endpoint's mode.
func (e *Endpoint) Mode() Mode { return e.cfg.Mode }

// Protocol is the inner payload type, e.g. geneve.ProtocolEthernet.
func (e *Endpoint) Protocol() uint16 { return e.cfg.Protocol }

// Overhead is what encapsulation adds to each inner frame: the GENEVE header
// and the NAT64 option, without the outer IP and UDP headers.
func (e *Endpoint) Overhead() int { return len(e.header(e.cfg.Remote.Addr(), false)) }

// Peers returns what the endpoint knows of each peer.
func (e *Endpoint) Peers() []PeerStatus {
	var out []PeerStatus
	for _, p := range e.peerList() {
		out = append(out, e.status(p))
	}
	return out
}

func (e *Endpoint) peerList() []*peer { return e.appendPeers(nil) }

// appendPeers appends every peer to ps: the maintenance pass reuses one
// slice, so that a server's tick allocates nothing however many peers it has.
func (e *Endpoint) appendPeers(ps []*peer) []*peer {
	if e.single != nil {
		return append(ps, e.single)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, p := range e.peers {
		ps = append(ps, p)
	}
	return ps
}

// clock is nanoseconds since the endpoint started, never 0: the one time
// base of peers, paths, the switch and the rate limits.
func (e *Endpoint) clock() int64 { return e.now() }

// String describes the endpoint for logs and errors.
func (e *Endpoint) String() string {
	return fmt.Sprintf("%s endpoint %s on %s", e.cfg.Mode, e.cfg.Local.Addr(), e.conn.LocalAddr())
}
