// Command geneve64 is a userspace GENEVE tunnel that crosses NAT64: the
// endpoint modes of the original proof of concept (symmetric, server,
// client) plus auto, the extension's NAT64 gateway, and a self-contained demo.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"geneve64/internal/memrelease"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	stop := startProfile()
	stopReleaser := memrelease.Start() // process-wide: once, however many endpoints run
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	stopReleaser()
	stop()
	os.Exit(code)
}

// run executes the command line and returns the exit code: 0 on success,
// 2 for bad arguments, 1 for anything else.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "geneve64: %v\nUsage: %s\nRun '%s --help' for more.\n", err, cmd.UseLine(), cmd.CommandPath())
		return 2
	}
	fmt.Fprintf(stderr, "geneve64: %v\n", err)
	return 1
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "geneve64",
		Short: "A userspace GENEVE tunnel that crosses NAT64",
		Long: `geneve64 runs GENEVE tunnel endpoints without root or a TAP device: the inner network
lives in an embedded netstack, reached through SOCKS5 and port forwards. Packets carry the
NAT64 extension option so a NAT64 gateway that knows it can route them to IPv6 hosts.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		endpointCommand(modeSymmetric, stderr),
		endpointCommand(modeServer, stderr),
		endpointCommand(modeClient, stderr),
		endpointCommand(modeAuto, stderr),
		gatewayCommand(stdout, stderr),
		demoCommand(stdout, stderr),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintf(cmd.OutOrStdout(), "geneve64 %s\n", version) },
		},
	)
	return root
}
