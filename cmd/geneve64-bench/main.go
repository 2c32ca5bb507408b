// Command geneve64-bench measures a geneve64 binary as users run it: both
// endpoints as processes of their own on loopback UDP, driven through
// SOCKS5 and a forward, beside the baselines a user would pick instead
// (kernel loopback TCP, and our own SOCKS5 front-end and relay with no
// tunnel). It is a command of its own so that the product binary carries
// only the product.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError marks an error in the command line: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "geneve64-bench: %v\nUsage: %s\n", err, cmd.UseLine())
		return 2
	}
	fmt.Fprintf(stderr, "geneve64-bench: %v\n", err)
	return 1
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	var o benchOpts
	root := &cobra.Command{
		Use:   "geneve64-bench [--geneve64 PATH] [--json] [--duration D]",
		Short: "Measure geneve64: throughput, latency, connection rate, memory",
		Long: `Runs both endpoints of the geneve64 binary under test as child processes on loopback UDP
(far end with egress, near end with SOCKS5 and a forward), drives them from this process
against a TCP sink on the host, and prints one table, with kernel loopback TCP and plain
relays (no tunnel) measured in the same run as baselines.

Without --geneve64 it uses a geneve64 next to this binary, or builds ./cmd/geneve64 with
the go command (as "go run ./cmd/geneve64-bench" from the repository does).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, cleanup, err := findGeneve64(o.geneve64, stderr)
			if err != nil {
				return err
			}
			defer cleanup()
			o.geneve64 = exe
			res, err := runBench(stderr, o)
			if err != nil {
				return err
			}
			if o.jsonOut {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"machine": machineInfo(), "results": res})
			}
			printBench(stdout, res)
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	f := root.Flags()
	f.StringVar(&o.geneve64, "geneve64", "", "the geneve64 binary to measure (default: beside this one, or built from ./cmd/geneve64)")
	f.DurationVar(&o.duration, "duration", 3*time.Second, "how long each throughput and rate figure runs")
	f.BoolVar(&o.jsonOut, "json", false, "print JSON instead of a table")
	f.BoolVar(&o.quick, "quick", false, "fewer, shorter runs (for CI smoke tests)")
	f.StringVar(&o.only, "only", "", "run only these groups: bulk, latency, conn, key (comma-separated; the kernel baseline always runs)")
	f.IntVar(&o.churn, "churn", 0, "also open, use and close this many SOCKS5 connections back to back (e.g. 200000), counting failures")
	root.AddCommand(relayCommand(stderr))
	return root
}

// findGeneve64 returns the binary to measure and what removes it when the
// bench built it.
func findGeneve64(given string, log io.Writer) (string, func(), error) {
	nothing := func() {}
	if given != "" {
		if _, err := exec.LookPath(given); err != nil {
			return "", nothing, usagef("--geneve64 %q: %v", given, err)
		}
		return given, nothing, nil
	}
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), "geneve64")
		if _, err := exec.LookPath(beside); err == nil {
			return beside, nothing, nil
		}
	}
	dir, err := os.MkdirTemp("", "geneve64-bench")
	if err != nil {
		return "", nothing, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	exe := filepath.Join(dir, "geneve64")
	fmt.Fprintf(log, "building ./cmd/geneve64 into %s\n", dir)
	if out, err := exec.Command("go", "build", "-o", exe, "./cmd/geneve64").CombinedOutput(); err != nil {
		cleanup()
		return "", nothing, fmt.Errorf("no --geneve64 given, and building ./cmd/geneve64 failed (run from the repository, or pass --geneve64): %v\n%s", err, out)
	}
	return exe, cleanup, nil
}
