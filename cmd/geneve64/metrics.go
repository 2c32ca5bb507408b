package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"geneve64/internal/node"
	"geneve64/nat64"
	"geneve64/stack"
)

// nodeCollector reads a node's counters when Prometheus scrapes: the
// packet path keeps only its atomic counters and pays nothing for metrics.
type nodeCollector struct {
	n *node.Node

	frames, bytes, drops, oam, forwarded, pathChanges     *prometheus.Desc
	peers, rtt, lastSeen, flows, socksActive, socksTotal  *prometheus.Desc
	merged, egressRefused, deviceOversize, sendQueueDrops *prometheus.Desc
}

func newNodeCollector(n *node.Node) *nodeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("geneve64_"+name, help, labels, nil)
	}
	return &nodeCollector{
		n:              n,
		frames:         d("frames_total", "Inner frames through the tunnel.", "direction"),
		bytes:          d("bytes_total", "Inner bytes through the tunnel.", "direction"),
		drops:          d("drops_total", "Packets dropped, by reason.", "reason"),
		oam:            d("oam_packets_total", "OAM (keepalive) packets.", "direction"),
		forwarded:      d("switched_frames_total", "Frames a server switched between peers."),
		pathChanges:    d("path_changes_total", "Learned paths set or moved."),
		peers:          d("peers", "Peers known now."),
		rtt:            d("peer_rtt_seconds", "Last keepalive round-trip time.", "peer", "identity"),
		lastSeen:       d("peer_last_seen_seconds", "Seconds since the last valid packet from the peer.", "peer", "identity"),
		flows:          d("egress_flows", "Egress flows open now.", "proto"),
		socksActive:    d("socks_connections", "SOCKS5 client connections open now."),
		socksTotal:     d("socks_connections_total", "SOCKS5 client connections accepted."),
		merged:         d("tcp_segments_merged_total", "Received TCP segments that reached the netstack merged with others."),
		sendQueueDrops: d("send_queue_drops_total", "Frames the netstack sent that were dropped because the queue behind a send under way was full."),
		deviceOversize: d("device_oversize_frames_total", "Frames dropped on their way to or from the --tap/--tun device for being larger than the inner MTU allows."),
		egressRefused:  d("egress_refused_total", "Egress TCP flows and UDP datagrams refused, by reason: a TCP flow is reset, a UDP datagram answered ICMP port unreachable.", "reason"),
	}
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.frames, c.bytes, c.drops, c.oam, c.forwarded, c.pathChanges,
		c.peers, c.rtt, c.lastSeen, c.flows, c.socksActive, c.socksTotal, c.merged, c.egressRefused, c.deviceOversize, c.sendQueueDrops} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.Endpoint.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.frames, s.FramesIn.Load(), "in")
	counter(c.frames, s.FramesOut.Load(), "out")
	counter(c.bytes, s.BytesIn.Load(), "in")
	counter(c.bytes, s.BytesOut.Load(), "out")
	counter(c.oam, s.OAMIn.Load(), "in")
	counter(c.oam, s.OAMOut.Load(), "out")
	counter(c.forwarded, s.Forwarded.Load())
	counter(c.pathChanges, s.PathChanges.Load())
	for _, r := range nat64.EndpointDropReasons() {
		counter(c.drops, s.Drops(r), r.String())
	}
	peers := c.n.Endpoint.Peers()
	gauge(c.peers, float64(len(peers)))
	// Per-peer series are labelled by the peer's unique name: two plain
	// GENEVE peers on one host share an identity (their address), and two
	// series with the same labels fail the whole scrape.
	for _, p := range peers {
		id := p.Identity.String()
		gauge(c.rtt, p.RTT.Seconds(), p.Name, id)
		if !p.LastSeen.IsZero() {
			gauge(c.lastSeen, time.Since(p.LastSeen).Seconds(), p.Name, id)
		}
	}
	if c.n.Stack != nil { // none on a pure bridge to a device
		st := c.n.Stack.Stats()
		gauge(c.flows, float64(st.TCPFlows), "tcp")
		gauge(c.flows, float64(st.UDPFlows), "udp")
		counter(c.merged, st.SegmentsMerged)
		counter(c.sendQueueDrops, st.SendQueueDrops)
		for _, r := range stack.EgressRefusals() {
			counter(c.egressRefused, c.n.Stack.EgressRefused(r), r.String())
		}
	}
	if c.n.Device != nil {
		counter(c.deviceOversize, c.n.Device.Oversize())
	}
	if c.n.SOCKS != nil {
		gauge(c.socksActive, float64(c.n.SOCKS.Active()))
		counter(c.socksTotal, c.n.SOCKS.Total())
	}
}

type metricsServer struct {
	srv *http.Server
}

// listenMetrics binds the metrics listener, before the node starts: its
// address must be known to the egress, which never lets peers reach it.
func listenMetrics(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return ln, nil
}

// denyListener returns egress rules for every address the listener ln can
// be reached at from this host: its own, or with a wildcard address every
// address of the host and loopback, on its port. /debug/tcp lists every
// peer's connections; no peer may read it through the egress.
func denyListener(ln net.Listener) []stack.EgressRule {
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	port := ap.Port()
	addrs := []netip.Addr{ap.Addr().Unmap()}
	if ap.Addr().IsUnspecified() {
		addrs = []netip.Addr{netip.IPv6Loopback(), netip.AddrFrom4([4]byte{127, 0, 0, 1})}
		if ifs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range ifs {
				if p, err := netip.ParsePrefix(a.String()); err == nil {
					addrs = append(addrs, p.Addr().Unmap())
				}
			}
		}
	}
	var rules []stack.EgressRule
	for _, a := range addrs {
		prefix := netip.PrefixFrom(a, a.BitLen())
		if a.Is4() && a.IsLoopback() {
			prefix = netip.MustParsePrefix("127.0.0.0/8") // all of it answers
		}
		rules = append(rules, stack.EgressRule{Prefix: prefix, FromPort: port, ToPort: port})
	}
	return rules
}

// startMetrics serves /metrics, /healthz (200 while a peer was heard
// within healthy, else 503) and /debug/tcp on ln.
func startMetrics(ln net.Listener, n *node.Node, healthy time.Duration, log *slog.Logger) *metricsServer {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newNodeCollector(n))
	registerRuntime(reg)
	var tcpConns func() []stack.TCPConnInfo
	if n.Stack != nil {
		tcpConns = n.Stack.TCPConns
	}
	return serveMetrics(ln, reg, func() bool { return n.Healthy(healthy) }, tcpConns, log)
}

// registerRuntime adds the process's and the Go runtime's own series,
// the scheduler's among them: how many goroutines ran and how long a
// readied one waited for a thread (go_sched_latencies_seconds) is what a
// packet's wake-ups cost, which the bench and operators both read.
func registerRuntime(reg *prometheus.Registry) {
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// serveMetrics serves reg, the health check and, when tcpConns is set, the
// netstack's TCP connections at /debug/tcp, one a line: what `ss -ti`
// shows of kernel sockets, for the connections no host tool can see.
func serveMetrics(ln net.Listener, reg *prometheus.Registry, healthy func() bool, tcpConns func() []stack.TCPConnInfo, log *slog.Logger) *metricsServer {
	mux := http.NewServeMux()
	// ContinueOnError: a series that fails to gather (whatever peers did
	// to cause it) is logged and left out; every other series is served.
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, ErrorLog: slogAdapter{log}}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if healthy() {
			fmt.Fprintln(w, "ok")
			return
		}
		http.Error(w, "no peer heard recently", http.StatusServiceUnavailable)
	})
	paths := "/metrics /healthz"
	if tcpConns != nil {
		paths += " /debug/tcp"
		mux.HandleFunc("/debug/tcp", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			for _, c := range tcpConns() {
				fmt.Fprintln(w, c)
			}
		})
	}
	ms := &metricsServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := ms.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server stopped", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String(), "paths", paths)
	return ms
}

func (m *metricsServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return m.srv.Shutdown(ctx)
}

// slogAdapter lets promhttp report gathering errors through slog.
type slogAdapter struct{ log *slog.Logger }

// Println implements promhttp.Logger.
func (a slogAdapter) Println(v ...any) { a.log.Warn("metrics: " + fmt.Sprint(v...)) }
