package main

import (
	"context"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"geneve64/nat64"
	"geneve64/nat64/gateway"
)

func gatewayCommand(stdout, stderr io.Writer) *cobra.Command {
	var ipv4, prefix, metrics, tun, logLevel, logFormat string
	var allow []string
	var allowPrivate bool
	var port uint16
	var mtu int
	cmd := &cobra.Command{
		Use:   "gateway --ipv4 ADDR --allow PREFIX [flags]",
		Short: "Run the NAT64 extension's gateway beside an ordinary NAT64 (Linux)",
		Long: `Relays GENEVE between the IPv4 internet and IPv6 hosts by the NAT64 extension's rules:
IPv4 GENEVE to ADDR:6081 goes to the IPv6 host its option names, from [PREFIX::sender]:port;
GENEVE leaving allowed hosts from port 6081 towards PREFIX goes out from ADDR:6081.
The IPv6 side is a TUN device that policy routing feeds: "geneve64 gateway setup" prints
(or, as root, applies) that host set-up; see the README, "Running a gateway".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(stderr, logLevel, logFormat)
			if err != nil {
				return err
			}
			rules := nat64.GatewayRules{Port: port, AllowPrivate: allowPrivate}
			if rules.IPv4, rules.Prefix, err = gatewayAddrs(ipv4, prefix); err != nil {
				return err
			}
			if len(allow) == 0 {
				return usagef("--allow is required: the IPv6 prefixes this gateway serves (::/0 for an open relay)")
			}
			for _, a := range allow {
				p, err := netip.ParsePrefix(a)
				if err != nil || !p.Addr().Is6() {
					return usagef("--allow %q: not an IPv6 prefix", a)
				}
				rules.Allowed = append(rules.Allowed, p.Masked())
			}
			g, err := gateway.Start(gateway.Config{Rules: rules, TUN: tun, MTU: mtu, Logger: log})
			if err != nil {
				return err
			}
			defer g.Close()
			if metrics != "" {
				reg := prometheus.NewRegistry()
				reg.MustRegister(gatewayCollector{g})
				registerRuntime(reg)
				ln, err := listenMetrics(metrics)
				if err != nil {
					return err
				}
				ms := serveMetrics(ln, reg, func() bool { return true }, nil, log)
				defer ms.Close()
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			log.Info("shutting down")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&ipv4, "ipv4", "", "the gateway's public IPv4 address")
	f.StringVar(&prefix, "prefix", nat64.WellKnownPrefix.String(), "the NAT64 prefix")
	f.StringArrayVar(&allow, "allow", nil, "IPv6 prefix of hosts this gateway serves (repeatable, required)")
	f.BoolVar(&allowPrivate, "allow-private", false, "relay to private IPv4 networks (10/8, 172.16/12, 192.168/16, 100.64/10) and IPv6 ULAs too")
	f.Uint16Var(&port, "port", 6081, "GENEVE port")
	f.StringVar(&tun, "tun", "geneve64gw", "TUN device for the IPv6 side")
	f.IntVar(&mtu, "mtu", 1500, "site link MTU: larger packets to IPv6 hosts are fragmented")
	f.StringVar(&metrics, "metrics", "", "serve Prometheus /metrics and /healthz on ADDR")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	cmd.Flags().SortFlags = false
	cmd.AddCommand(gatewaySetupCommand(stdout, stderr))
	return cmd
}

// gatewayCollector exports a gateway's counters when scraped.
type gatewayCollector struct{ g *gateway.Gateway }

var (
	gwRelayed = prometheus.NewDesc("geneve64_gateway_relayed_total", "Packets relayed, by direction.", []string{"direction"}, nil)
	gwDrops   = prometheus.NewDesc("geneve64_gateway_drops_total", "Packets dropped, by reason.", []string{"reason"}, nil)
	gwRefused = prometheus.NewDesc("geneve64_gateway_refused_total", "Packets not relayed for their destination, by reason.", []string{"reason"}, nil)
	gwKernel  = prometheus.NewDesc("geneve64_gateway_kernel_drops_total",
		"Packets for the gateway the kernel dropped before it could read them: its IPv4 socket's receive buffer, or the TUN's queue, was full.", []string{"queue"}, nil)
)

func (gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- gwRelayed
	ch <- gwDrops
	ch <- gwRefused
	ch <- gwKernel
}

func (c gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(gwRelayed, prometheus.CounterValue, float64(c.g.In.Load()), "to-ipv6")
	ch <- prometheus.MustNewConstMetric(gwRelayed, prometheus.CounterValue, float64(c.g.Out.Load()), "to-ipv4")
	for _, r := range nat64.GatewayDropReasons() {
		ch <- prometheus.MustNewConstMetric(gwDrops, prometheus.CounterValue, float64(c.g.Stats().Drops(r)), r.String())
	}
	for _, r := range nat64.GatewayRefusals() {
		ch <- prometheus.MustNewConstMetric(gwRefused, prometheus.CounterValue, float64(c.g.Refused().Load(r)), r.String())
	}
	ch <- prometheus.MustNewConstMetric(gwKernel, prometheus.CounterValue, float64(c.g.SocketDrops()), "socket")
	ch <- prometheus.MustNewConstMetric(gwKernel, prometheus.CounterValue, float64(c.g.TUNDrops()), "tun")
}

// gatewayAddrs parses --ipv4 and --prefix, for the gateway and its setup.
func gatewayAddrs(ipv4, prefix string) (netip.Addr, netip.Prefix, error) {
	a, err := netip.ParseAddr(ipv4)
	if err != nil || !a.Is4() {
		return a, netip.Prefix{}, usagef("--ipv4 %q: not an IPv4 address", ipv4)
	}
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		return a, p, usagef("--prefix %q: not a prefix", prefix)
	}
	if err := nat64.CheckPrefix(p); err != nil {
		return a, p, usagef("--prefix %q: %v", prefix, err)
	}
	return a, p, nil
}
