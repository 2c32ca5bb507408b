package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// startProfile writes a CPU profile to $GENEVE64_CPUPROFILE.<pid>, and a
// heap profile at exit to $GENEVE64_MEMPROFILE.<pid>, when those are set:
// the way to see where an endpoint spends its time and memory, including
// the endpoints that geneve64 bench starts as child processes.
func startProfile() func() {
	stopHeap := func() {}
	if base := os.Getenv("GENEVE64_MEMPROFILE"); base != "" {
		stopHeap = func() {
			if f, err := os.Create(fmt.Sprintf("%s.%d", base, os.Getpid())); err == nil {
				runtime.GC()
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
	}
	base := os.Getenv("GENEVE64_CPUPROFILE")
	if base == "" {
		return stopHeap
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", base, os.Getpid()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "geneve64: cpu profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close(); stopHeap() }
}
