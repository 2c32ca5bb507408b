package main

import "os"

// envKnobs are every environment variable geneve64 reads, read here and
// nowhere else: they are for experiments and diagnosis, not configuration
// (that is flags and --config), and one place lists them all. The bench
// sets them for its child processes.
type envKnobs struct {
	// TCP overrides the netstack's TCP settings (stack.Config.TCP), e.g.
	// "rack=on,cc=cubic".
	TCP string
	// CPUProfile, Trace and MemProfile, when set, are the base names of a
	// CPU profile, an execution trace and a heap profile at exit, each
	// written to NAME.<pid>.
	CPUProfile, Trace, MemProfile string
}

// knobs is read once, before anything runs.
var knobs = envKnobs{
	TCP:        os.Getenv("GENEVE64_TCP"),
	CPUProfile: os.Getenv("GENEVE64_CPUPROFILE"),
	Trace:      os.Getenv("GENEVE64_TRACE"),
	MemProfile: os.Getenv("GENEVE64_MEMPROFILE"),
}
