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
// including the endpoints that geneve64-bench starts as child processes.
// It returns the function that stops them all.
func startProfile() func() {
	var stops []func()
	// record starts a recording into base.<pid> when base is set.
	record := func(base string, start func(io.Writer) error, stop func()) {
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
	record(knobs.CPUProfile, pprof.StartCPUProfile, pprof.StopCPUProfile)
	record(knobs.Trace, trace.Start, trace.Stop)
	if base := knobs.MemProfile; base != "" {
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
