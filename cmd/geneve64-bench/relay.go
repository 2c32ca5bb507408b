package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"geneve64/socks"
)

// The plain-relay baseline: the bench's second reference, beside kernel
// loopback TCP. It runs our own SOCKS5 front-end and TCP forward, each in a
// child process as the endpoints are, on the host's sockets with no tunnel
// and no netstack between them: client → SOCKS5 → relay → sink. What the
// tunnel costs is the difference; and a figure this baseline cannot reach
// on a machine, no tunnel between the same two processes can either.

// hostNetwork is the socks.Network of the host's own sockets. Dials skip
// keep-alive as the endpoints' do on loopback (see stack.Config), so the
// two baselines' system calls compare.
type hostNetwork struct{}

// DialContext implements socks.Network with a host dial.
func (hostNetwork) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d := net.Dialer{KeepAlive: -1}
	return d.DialContext(ctx, network, address)
}

// Listen implements socks.Network with a host listener.
func (hostNetwork) Listen(network, address string) (net.Listener, error) {
	return net.Listen(network, address)
}

// ListenPacket implements socks.Network with a host socket.
func (hostNetwork) ListenPacket(network, address string) (net.PacketConn, error) {
	return net.ListenPacket(network, address)
}

// LookupNetIP implements socks.Network with the host's resolver.
func (hostNetwork) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, network, host)
}

// relayCommand is the hidden child of the plain-relay baseline: "socks"
// runs the SOCKS5 front-end, "forward TARGET" a TCP forward to TARGET,
// both on loopback port 0, reporting their address on --ready-fd as
// geneve64 does, until interrupted.
func relayCommand(stderr io.Writer) *cobra.Command {
	var readyFD int
	cmd := &cobra.Command{
		Use:    "relay socks | forward TARGET",
		Short:  "One process of the plain-relay baseline (no tunnel)",
		Hidden: true,
		Args:   cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewJSONHandler(stderr, nil))
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var r readyReport
			switch {
			case args[0] == "socks" && len(args) == 1:
				s, err := socks.Listen(hostNetwork{}, socks.Config{Addr: "127.0.0.1:0", Logger: log})
				if err != nil {
					return err
				}
				defer s.Close()
				r.SOCKS = s.Addr().String()
			case args[0] == "forward" && len(args) == 2:
				f := socks.Forward{Proto: "tcp", Listen: "127.0.0.1:0", Target: args[1]}
				fw, err := socks.StartForward(hostNetwork{}, f, 0, log)
				if err != nil {
					return err
				}
				defer fw.Close()
				r.Forwards = []string{fw.Addr().String()}
			default:
				return usagef("relay %q: want socks, or forward TARGET", args)
			}
			if readyFD > 0 {
				ready := os.NewFile(uintptr(readyFD), "ready-fd")
				json.NewEncoder(ready).Encode(r)
				ready.Close()
			}
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().IntVar(&readyFD, "ready-fd", 0, "write the listening address as one JSON line to this descriptor")
	return cmd
}

// startRelayPair starts the plain-relay baseline in front of the sink: the
// far process forwards to it, the near one is the SOCKS5 front-end whose
// clients CONNECT to the far one.
func startRelayPair(sinkPort int) (*benchPair, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	far := exec.Command(exe, "relay", "forward", fmt.Sprintf("127.0.0.1:%d", sinkPort))
	near := exec.Command(exe, "relay", "socks")
	bp := &benchPair{near: near, far: far}
	r, err := startReady(far)
	if err != nil {
		return nil, err
	}
	if len(r.Forwards) == 1 {
		bp.target = r.Forwards[0]
	}
	if r, err = startReady(near); err != nil {
		bp.stop()
		return nil, err
	}
	bp.socks = r.SOCKS
	if bp.socks == "" || bp.target == "" {
		bp.stop()
		return nil, fmt.Errorf("bench: the relays did not report their addresses")
	}
	return bp, nil
}

// relayBulk: one stream each way through the plain relays, the bulk
// figures' second baseline.
func relayBulk(snk *sink, o benchOpts, add func(benchResult), kernel1 float64) error {
	rp, err := startRelayPair(snk.port())
	if err != nil {
		return err
	}
	defer rp.stop()
	for _, dir := range []byte{sinkUpload, sinkDownload} {
		g, note := bulk(rp.dialSOCKS, 1, dir, o.duration, snk)
		add(benchResult{Name: "plain relays, no tunnel: SOCKS5, 1 stream " + dirName(dir), Value: g, Unit: "Gbit/s", OfPct: 100 * g / kernel1, Comment: note})
		addAll(add, costResults("per MiB, 1 stream "+dirName(dir)+", plain relays", bulkCosts(rp.dialSOCKS, dir, o.duration, snk, rp.costProcs("SOCKS5 front-end", "relay")...)))
	}
	return nil
}
