package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/net/proxy"

	"geneve64/internal/netsim"
	"geneve64/internal/node"
	"geneve64/nat64"
	"geneve64/socks"
	"geneve64/stack"
)

// The demo's world, in documentation addresses like the original README's.
var (
	demoServerID = netip.MustParseAddr("2001:db8:a::1")
	demoClientID = netip.MustParseAddr("fdd9:f2f4:ed01::1")
	demoGateway  = netip.MustParseAddr("203.0.113.90")
	demoEntry    = "geneve-entry-point.example"
	demoPageURL  = "http://10.42.0.1/"
	demoMarker   = "reached through GENEVE over NAT64"
)

func demoCommand(stdout, stderr io.Writer) *cobra.Command {
	var once bool
	var socksAddr, logLevel string
	cmd := &cobra.Command{
		Use:   "demo [--once]",
		Short: "Run a whole tunnel across two simulated NAT64 sites in this process",
		Long: `The demo needs nothing but this binary. It builds a small simulated internet: a server
site whose NAT64 has the GENEVE extension gateway, and a client site behind a plain NAT64
behind a carrier NAT. A server endpoint (with egress and a web page in its netstack) and a
client endpoint (with SOCKS5) run across it, over the real tunnel code.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(stderr, logLevel, "text")
			if err != nil {
				return err
			}
			addr, err := socks.LoopbackDefault(socksAddr)
			if err != nil {
				return usagef("--socks %q: %v", socksAddr, err)
			}
			return runDemo(stdout, addr, once, log)
		},
	}
	cmd.Flags().BoolVar(&once, "once", false, "fetch the page through the SOCKS proxy, print the result, and exit (0 only if it worked)")
	cmd.Flags().StringVar(&socksAddr, "socks", "127.0.0.1:1080", "where the client's SOCKS5 proxy listens")
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

// demoWorld builds the simulated network and the two endpoints.
type demo struct {
	server, client *node.Node
	natC, cgn      *netsim.NAT
}

func startDemo(socksAddr string, log *slog.Logger) (*demo, error) {
	internet := netsim.NewSegment("internet")
	siteA, siteC, carrier := netsim.NewSegment("siteA"), netsim.NewSegment("siteC"), netsim.NewSegment("carrier")
	netsim.NewNAT("natA", siteA, internet, netsim.NATConfig{Public: demoGateway, Prefix: nat64.WellKnownPrefix,
		Gateway: &nat64.GatewayRules{Allowed: []netip.Prefix{netip.MustParsePrefix("2001:db8:a::/48")}}})
	cgn := netsim.NewNAT("cgn", carrier, internet, netsim.NATConfig{Public: netip.MustParseAddr("192.0.2.1")})
	natC := netsim.NewNAT("natC", siteC, carrier, netsim.NATConfig{Public: netip.MustParseAddr("100.64.0.2"), Prefix: nat64.WellKnownPrefix})
	hostA := netsim.NewHost("server", siteA, demoServerID)
	hostC := netsim.NewHost("client", siteC, netip.MustParseAddr("2001:db8:c::1"))
	dns := netsim.NewResolver()
	dns.Set(demoEntry, demoGateway)

	d := &demo{natC: natC, cgn: cgn}
	var err error
	d.server, err = node.Start(context.Background(), node.Config{
		Endpoint: nat64.Config{Mode: nat64.Server, VNI: 42, Local: netip.AddrPortFrom(demoServerID, 0),
			Remote: netip.MustParsePrefix("fdd9:f2f4:ed01::/64"), Listen: hostA.Listen},
		Stack:  stack.Config{Addrs: []netip.Prefix{netip.MustParsePrefix("10.42.0.1/24"), netip.MustParsePrefix("fd42::1/64")}, Egress: true, EgressLoopback: true, TCP: knobs.TCP},
		Logger: log.With("end", "server"),
	})
	if err != nil {
		return nil, err
	}
	if err := d.servePage(); err != nil {
		d.close()
		return nil, err
	}
	d.client, err = node.Start(context.Background(), node.Config{
		Endpoint: nat64.Config{Mode: nat64.Client, VNI: 42, Local: netip.AddrPortFrom(demoClientID, 0),
			Path: nat64.Target{Host: demoEntry, Port: 6081}, Remote: netip.PrefixFrom(demoServerID, 128),
			Listen: hostC.Listen, HasIPv4: hostC.HasIPv4, Resolver: dns, NAT64Prefix: nat64.WellKnownPrefix},
		Stack: stack.Config{
			TCP:    knobs.TCP,
			Addrs:  []netip.Prefix{netip.MustParsePrefix("10.42.0.2/24"), netip.MustParsePrefix("fd42::2/64")},
			Routes: []stack.Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.42.0.1")}},
			DNS:    []netip.Addr{netip.MustParseAddr("10.42.0.1")},
		},
		SOCKS:  &socks.Config{Addr: socksAddr},
		Logger: log.With("end", "client"),
	})
	if err != nil {
		d.close()
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%w (another program has %s: try --socks 127.0.0.1:1081)", err, socksAddr)
		}
		return nil, err
	}
	return d, nil
}

// servePage serves a small web page inside the server's netstack, on port
// 80 of its inner addresses: it exists only inside the tunnel.
func (d *demo) servePage() error {
	ln, err := d.server.Stack.Listen("tcp", ":80")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var path string
		for _, p := range d.server.Endpoint.Peers() {
			path = p.Path.String()
		}
		fmt.Fprintf(w, "Hello from %s, %s.\n", d.server.Endpoint.LocalAddr().Addr(), demoMarker)
		fmt.Fprintf(w, "You are %s inside the tunnel; outside, your packets arrived from %s\n", r.RemoteAddr, path)
		fmt.Fprintf(w, "(a plain NAT64 and a carrier NAT chose that address and port; the extension gateway routed them here).\n")
	})
	go http.Serve(ln, mux)
	return nil
}

func (d *demo) close() {
	if d.client != nil {
		d.client.Close()
	}
	if d.server != nil {
		d.server.Close()
	}
}

func (d *demo) status() string {
	var b strings.Builder
	st := d.client.Endpoint.Stats()
	for _, p := range d.client.Endpoint.Peers() {
		state := "waiting"
		if !p.LastSeen.IsZero() {
			state = "up"
		}
		fmt.Fprintf(&b, "tunnel %s | rtt %v", state, p.RTT.Round(time.Microsecond))
	}
	for _, p := range d.server.Endpoint.Peers() {
		fmt.Fprintf(&b, " | server sees client at %s", p.Path)
	}
	fmt.Fprintf(&b, " | frames out %d in %d | drops %d", st.FramesOut.Load(), st.FramesIn.Load(), st.TotalDrops())
	return b.String()
}

func runDemo(stdout io.Writer, socksAddr string, once bool, log *slog.Logger) error {
	d, err := startDemo(socksAddr, log)
	if err != nil {
		return err
	}
	defer d.close()
	proxyAddr := d.client.SOCKS.Addr().String()
	if once {
		return fetchOnce(stdout, proxyAddr, d)
	}
	fmt.Fprintf(stdout, `geneve64 demo: a GENEVE tunnel across two simulated NAT64 sites, in this process.

  client  %s  behind a plain NAT64, behind a carrier NAT (192.0.2.1)
  server  %s  behind a NAT64 with the GENEVE extension gateway (%s)
  inner   10.42.0.2 (client) <-> 10.42.0.1 (server, egress), fd42::/64 too

Try, in another terminal:
  curl --socks5-hostname %s %s
  curl --socks5-hostname %s 'http://[fd42::1]/'
The server end also has egress: through the proxy, http://localhost:PORT/ reaches
this machine's own localhost:PORT. Stop with Ctrl-C.

`, demoClientID, demoServerID, demoGateway, proxyAddr, demoPageURL, proxyAddr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tty := isTerminal(stdout)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := time.Time{}
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout)
			return nil
		case <-tick.C:
			if tty {
				fmt.Fprintf(stdout, "\r\033[K%s", d.status())
			} else if time.Since(last) >= 10*time.Second {
				fmt.Fprintln(stdout, d.status())
				last = time.Now()
			}
		}
	}
}

// fetchOnce fetches the demo page through the SOCKS proxy, as a user's
// curl would, and reports it.
func fetchOnce(stdout io.Writer, proxyAddr string, d *demo) error {
	dialer, err := proxy.SOCKS5("tcp", proxyAddr, nil, proxy.Direct)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: dialer.(proxy.ContextDialer).DialContext}}
	start := time.Now()
	resp, err := client.Get(demoPageURL)
	if err != nil {
		return fmt.Errorf("fetching %s through SOCKS5 %s: %w", demoPageURL, proxyAddr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	elapsed := time.Since(start)
	if err != nil {
		return fmt.Errorf("reading %s: %w", demoPageURL, err)
	}
	fmt.Fprintf(stdout, "GET %s through SOCKS5 %s: %s, %d bytes in %v\n\n%s\n%s\n",
		demoPageURL, proxyAddr, resp.Status, len(body), elapsed.Round(time.Microsecond), body, d.status())
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), demoMarker) {
		return fmt.Errorf("unexpected answer from %s", demoPageURL)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
