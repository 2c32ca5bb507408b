// Package memrelease hands memory a process no longer uses back to the
// system. The decision to run it is process-wide policy, the command's
// (main starts it once, however many endpoints the process runs); the code
// is a package of its own so that tests that run endpoints in process, as
// the soak does, can run it too.
package memrelease

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// releaseThreshold is how much freed heap may sit in the process before it
// is handed back to the system.
const releaseThreshold = 16 << 20

// releaseInterval is how often the heap is looked at: reading the runtime's
// metrics is cheap and stops nothing.
const releaseInterval = 2 * time.Second

// memSample is what the release decision reads from runtime/metrics.
type memSample struct {
	free, objects, live uint64 // heap bytes: free, in objects (garbage too), live at the last collection
	cycles              uint64 // collections so far
	stacks, goroutines  uint64 // bytes held for goroutine stacks, goroutines now
}

var memMetrics = []string{
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
	"/gc/cycles/total:gc-cycles",
	"/memory/classes/heap/stacks:bytes",
	"/sched/goroutines:goroutines",
}

// memSamples returns the samples readMemory reads, named in order.
func memSamples() []metrics.Sample {
	samples := make([]metrics.Sample, len(memMetrics))
	for i, name := range memMetrics {
		samples[i].Name = name
	}
	return samples
}

// readMemory reads the runtime's memory metrics into samples, made by
// memSamples, and returns them as a memSample.
func readMemory(samples []metrics.Sample) memSample {
	metrics.Read(samples)
	v := func(i int) uint64 {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return samples[i].Value.Uint64()
	}
	return memSample{free: v(0), objects: v(1), live: v(2), cycles: v(3), stacks: v(4), goroutines: v(5)}
}

// releaser decides, one memSample per interval, when to collect and hand
// freed memory back to the system. After a burst of connections closes,
// the Go runtime keeps the memory it grew to and returns it only slowly;
// an endpoint that served 30,000 connections stayed at 270 MB with 8 MB
// live. So it releases whenever much freed heap sits idle.
//
// Memory can also sit as garbage nobody collects: when a burst ends, the
// allocations that would trigger the next collection stop with it, and the
// connections' memory stays counted as heap objects until the runtime's
// two-minute forced collection. The live figure cannot tell garbage from
// use: the last collection may have run while the burst's connections
// were still in TIME-WAIT, so it counts them as live although they are
// gone a second later (an endpoint stayed at 70 MB for that after 200,000
// connections, where it drops to 28 MB). So once a process has gone a
// whole interval without a collection, it collects once if its heap holds
// more than releaseThreshold, and does not collect again until the runtime
// has run a collection of its own, so an idle process with a large live
// heap is not collected over and over. Beyond that once, it collects
// whenever the heap holds much more than the last collection left live,
// or goroutine stacks much more than the goroutines left could use at 32
// KiB each: the stacks of goroutines that ended (a burst's connections,
// idle workers) stay reserved until a collection frees them.
type releaser struct {
	lastCycles uint64
	forced     bool // the last collection was ours
}

// check reports whether to collect and release now.
func (r *releaser) check(s memSample) bool {
	idle := s.cycles == r.lastCycles
	if !idle {
		r.forced = false // the runtime collected on its own: a new burst
	}
	staleGarbage := idle && !r.forced && s.objects > releaseThreshold
	growing := idle && (s.objects > s.live+releaseThreshold || s.stacks > s.goroutines*32<<10+releaseThreshold)
	release := s.free > releaseThreshold || staleGarbage || growing
	r.lastCycles = s.cycles
	return release
}

// released records the sample read after a release, so that the
// collection it ran does not count as the runtime's.
func (r *releaser) released(after memSample) {
	r.lastCycles = after.cycles
	r.forced = true
}

// Start runs the releaser every releaseInterval, for the whole process,
// until stop, which waits for it to end. Reading runtime/metrics does not
// stop the world.
func Start() (stop func()) {
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		samples := memSamples()
		t := time.NewTicker(releaseInterval)
		defer t.Stop()
		var r releaser
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if r.check(readMemory(samples)) {
					debug.FreeOSMemory()
					r.released(readMemory(samples))
				}
			}
		}
	}()
	return func() { close(done); <-ended }
}
