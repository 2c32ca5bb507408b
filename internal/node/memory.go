package node

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

// releaseMemory hands freed heap back to the system when much of it sits
// idle. After a burst of connections closes, the Go runtime keeps the
// memory it grew to and returns it only slowly; an endpoint that served
// 30,000 connections stayed at 270 MB with 8 MB live. The check reads
// runtime/metrics, which does not stop the world, every releaseInterval.
//
// Memory can also sit as garbage nobody collects: when a burst ends, the
// allocations that would trigger the next collection stop with it, and the
// connections' memory stays counted as heap objects until the runtime's
// two-minute forced collection. So when no collection ran during a whole
// interval and the heap holds much more than was live at the last one,
// collect and release as well. The same goes for goroutine stacks: those
// of goroutines that ended (a burst's connections, idle workers) stay
// reserved for stacks until a collection frees them, so when no collection
// ran and stacks hold much more than the goroutines left could use at 32
// KiB each, collect and release.
func (n *Node) releaseMemory() {
	sample := []metrics.Sample{
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/sched/goroutines:goroutines"},
	}
	value := func(i int) uint64 {
		if sample[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[i].Value.Uint64()
	}
	t := time.NewTicker(releaseInterval)
	defer t.Stop()
	var lastCycles uint64
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
			metrics.Read(sample)
			free, objects, live, cycles := value(0), value(1), value(2), value(3)
			stacks, goroutines := value(4), value(5)
			idle := cycles == lastCycles
			idleGarbage := idle && (objects > live+releaseThreshold || stacks > goroutines*32<<10+releaseThreshold)
			if free > releaseThreshold || idleGarbage {
				debug.FreeOSMemory()
				metrics.Read(sample)
				cycles = value(3)
			}
			lastCycles = cycles
		}
	}
}
