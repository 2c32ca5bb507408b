package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"geneve64/internal/node"
	"geneve64/nat64"
)

type modeInfo struct {
	mode  nat64.Mode
	args  string
	short string
	long  string
}

var (
	modeSymmetric = modeInfo{nat64.Symmetric, "VNI LOCAL PATH REMOTE", "Both sites' NAT64s have the extension (was geneve.py)",
		`Bind LOCAL, send to PATH, and accept only packets whose NAT64 option says REMOTE → LOCAL.
Example (the original README's):
  geneve64 symmetric 42 2001:db8:a::1 64:ff9b::203.0.113.90 2001:db8:b::1`}
	modeServer = modeInfo{nat64.Server, "VNI LOCAL REMOTE", "Serve clients; paths are learned from them (was server.py)",
		`Bind LOCAL and learn each client's path from its packets (the newest valid packet wins).
REMOTE may be a prefix of client identities; many clients share one inner segment.
Example:
  geneve64 server 42 2001:db8:a::1 fdd9:f2f4:ed01::/64 --addr 10.42.0.1/24 --egress`}
	modeClient = modeInfo{nat64.Client, "VNI LOCAL PATH REMOTE", "Reach a server through any NAT64 (was client.py)",
		`LOCAL is this end's identity only; PATH may be an IPv6 or IPv4 address or a hostname.
Keepalives hold the NAT mapping open.
Example:
  geneve64 client 42 fdd9:f2f4:ed01::1 geneve-entry-point.nat64.dk 2001:db8:a::1 \
    --addr 10.42.0.2/24 --route 0.0.0.0/0@10.42.0.1 --dns 10.42.0.1 --socks 127.0.0.1:1080`}
	modeAuto = modeInfo{nat64.Auto, "VNI LOCAL PATH REMOTE", "Symmetric that also learns the path, for either side's NAT64",
		`Send to PATH like symmetric, and learn the path from valid packets like a server, so
the tunnel works whichever side's NAT64 has the extension.`}
)

func endpointCommand(m modeInfo, stderr io.Writer) *cobra.Command {
	var flags Settings
	var configFile string
	var readyFD int
	cmd := &cobra.Command{
		Use:   m.mode.String() + " " + m.args + " [flags]",
		Short: m.short,
		Long:  m.long,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := merge(cmd.Flags(), flags, configFile)
			if err != nil {
				return err
			}
			if err := s.positional(m.mode, args); err != nil {
				return err
			}
			log, err := newLogger(stderr, s.LogLevel, s.LogFormat)
			if err != nil {
				return err
			}
			cfg, err := s.nodeConfig(m.mode)
			if err != nil {
				return err
			}
			ready, err := readyFile(readyFD)
			if err != nil {
				return err
			}
			cfg.Logger = log
			return runNode(cfg, s.Metrics, s.Keepalive, ready, log)
		},
	}
	registerFlags(cmd.Flags(), &flags)
	cmd.Flags().StringVar(&configFile, "config", "", "read settings from a TOML file (flags override it)")
	cmd.Flags().IntVar(&readyFD, "ready-fd", 0, "once every listener is up, write one JSON line of their addresses to this open descriptor and close it")
	cmd.Flags().SortFlags = false
	return cmd
}

// runNode runs an endpoint until SIGINT or SIGTERM, then shuts it down:
// stop accepting, close forwards and SOCKS, close the socket, within 2 s.
func runNode(cfg node.Config, metricsAddr string, keepalive time.Duration, ready *os.File, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var mln net.Listener
	if metricsAddr != "" {
		var err error
		if mln, err = listenMetrics(metricsAddr); err != nil {
			return err
		}
		cfg.Stack.EgressDeny = append(cfg.Stack.EgressDeny, denyListener(mln)...)
	}
	n, err := node.Start(ctx, cfg)
	if err != nil {
		if mln != nil {
			mln.Close()
		}
		if errors.Is(err, nat64.ErrNeedPrefix) {
			err = fmt.Errorf("%w (give the prefix with --nat64-prefix)", err)
		}
		return err
	}
	var ms *metricsServer
	if mln != nil {
		healthy := 3 * keepalive
		if healthy <= 0 {
			healthy = 90 * time.Second
		}
		ms = startMetrics(mln, n, healthy, log)
		metricsAddr = mln.Addr().String()
	}
	if err := signalReady(ready, n, metricsAddr); err != nil {
		log.Warn("readiness report not delivered", "err", err)
	}
	<-ctx.Done()
	log.Info("shutting down")
	done := make(chan error, 1)
	go func() {
		if ms != nil {
			ms.Close()
		}
		done <- n.Close()
	}()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Debug("shutdown", "err", err)
		}
	case <-time.After(2 * time.Second):
		log.Warn("shutdown took over 2 s; exiting anyway")
	}
	return nil
}
