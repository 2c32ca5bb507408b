package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// startProfile writes, when the variables are set, a CPU profile to
// $GENEVE64_CPUPROFILE.<pid>, an execution trace to $GENEVE64_TRACE.<pid>,
// and a heap profile at exit to $GENEVE64_MEMPROFILE.<pid>: the way to see
// where an endpoint spends its time and memory, and where it waits,
// including the endpoints that geneve64 bench starts as child processes.
// It returns the function that stops them all.
func startProfile() func() {
	var stops []func()
	// record starts a recording into $env.<pid> when env is set.
	record := func(env string, start func(io.Writer) error, stop func()) {
		base := os.Getenv(env)
		if base == "" {
			return
		}
		if f := createProfile(base); f != nil {
			if err := start(f); err != nil {
				f.Close()
				return
			}
			stops = append(stops, func() { stop(); f.Close() })
		}
	}
	record("GENEVE64_CPUPROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile)
	record("GENEVE64_TRACE", trace.Start, trace.Stop)
	if base := os.Getenv("GENEVE64_MEMPROFILE"); base != "" {
		stops = append(stops, func() {
			if f := createProfile(base); f != nil {
				runtime.GC()
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		})
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}

func createProfile(base string) *os.File {
	f, err := os.Create(fmt.Sprintf("%s.%d", base, os.Getpid()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "geneve64: profile:", err)
		return nil
	}
	return f
}
