package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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

	frames, bytes, drops, oam, forwarded, pathChanges    *prometheus.Desc
	peers, rtt, lastSeen, flows, socksActive, socksTotal *prometheus.Desc
	merged                                               *prometheus.Desc
}

func newNodeCollector(n *node.Node) *nodeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("geneve64_"+name, help, labels, nil)
	}
	return &nodeCollector{
		n:           n,
		frames:      d("frames_total", "Inner frames through the tunnel.", "direction"),
		bytes:       d("bytes_total", "Inner bytes through the tunnel.", "direction"),
		drops:       d("drops_total", "Packets dropped, by reason.", "reason"),
		oam:         d("oam_packets_total", "OAM (keepalive) packets.", "direction"),
		forwarded:   d("switched_frames_total", "Frames a server switched between peers."),
		pathChanges: d("path_changes_total", "Learned paths set or moved."),
		peers:       d("peers", "Peers known now."),
		rtt:         d("peer_rtt_seconds", "Last keepalive round-trip time.", "peer", "identity"),
		lastSeen:    d("peer_last_seen_seconds", "Seconds since the last valid packet from the peer.", "peer", "identity"),
		flows:       d("egress_flows", "Egress flows open now.", "proto"),
		socksActive: d("socks_connections", "SOCKS5 client connections open now."),
		socksTotal:  d("socks_connections_total", "SOCKS5 client connections accepted."),
		merged:      d("tcp_segments_merged_total", "Received TCP segments that reached the netstack merged with others."),
	}
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.frames, c.bytes, c.drops, c.oam, c.forwarded, c.pathChanges,
		c.peers, c.rtt, c.lastSeen, c.flows, c.socksActive, c.socksTotal, c.merged} {
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
	for _, r := range nat64.DropReasons() {
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
	st := c.n.Stack.Stats()
	gauge(c.flows, float64(st.TCPFlows), "tcp")
	gauge(c.flows, float64(st.UDPFlows), "udp")
	counter(c.merged, st.SegmentsMerged)
	if c.n.SOCKS != nil {
		gauge(c.socksActive, float64(c.n.SOCKS.Active()))
		counter(c.socksTotal, c.n.SOCKS.Total())
	}
}

type metricsServer struct {
	srv *http.Server
}

// startMetrics serves /metrics, /healthz (200 while a peer was heard
// within healthy, else 503) and /debug/tcp on addr.
func startMetrics(addr string, n *node.Node, healthy time.Duration, log *slog.Logger) (*metricsServer, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newNodeCollector(n), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return serveMetrics(addr, reg, func() bool { return n.Healthy(healthy) }, n.Stack.TCPConns, log)
}

// serveMetrics serves reg, the health check and, when tcpConns is set, the
// netstack's TCP connections at /debug/tcp, one a line: what `ss -ti`
// shows of kernel sockets, for the connections no host tool can see.
func serveMetrics(addr string, reg *prometheus.Registry, healthy func() bool, tcpConns func() []stack.TCPConnInfo, log *slog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
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
	return ms, nil
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
