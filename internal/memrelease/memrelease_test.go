package memrelease

import (
	"runtime"
	"testing"
)

const mib = 1 << 20

// TestReleaserAfterBurst: the last collection of a burst counted its
// closing connections as live; once the process idles a whole interval it
// collects once, and not again until the runtime collects by itself.
func TestReleaserAfterBurst(t *testing.T) {
	var r releaser
	steps := []struct {
		name string
		s    memSample
		want bool
	}{
		{"busy: the runtime collects", memSample{objects: 60 * mib, live: 50 * mib, cycles: 10}, false},
		{"burst over, stale live figure", memSample{objects: 60 * mib, live: 50 * mib, cycles: 10}, true},
		{"idle after ours", memSample{objects: 20 * mib, live: 20 * mib, cycles: 11}, false},
		{"still idle, large live heap", memSample{objects: 20 * mib, live: 20 * mib, cycles: 11}, false},
		{"the runtime collects again", memSample{objects: 30 * mib, live: 20 * mib, cycles: 12}, false},
		{"idle again", memSample{objects: 30 * mib, live: 20 * mib, cycles: 12}, true},
	}
	for _, st := range steps {
		got := r.check(st.s)
		if got != st.want {
			t.Errorf("%s: check = %v, want %v", st.name, got, st.want)
		}
		if got {
			after := st.s
			after.cycles++
			r.released(after)
		}
	}
}

// TestReleaserSmallHeap: a small idle process is left alone; much freed
// heap or idle garbage beyond what was live is released.
func TestReleaserSmallHeap(t *testing.T) {
	var r releaser
	for i, s := range []memSample{
		{objects: 4 * mib, live: 3 * mib, cycles: 5},
		{objects: 4 * mib, live: 3 * mib, cycles: 5},
		{objects: 5 * mib, live: 3 * mib, cycles: 5},
	} {
		if r.check(s) {
			t.Errorf("sample %d: released a small idle heap", i)
		}
	}
	if !r.check(memSample{free: 20 * mib, objects: 4 * mib, cycles: 6}) {
		t.Error("20 MiB of freed heap not released")
	}
	var g releaser
	g.check(memSample{objects: 4 * mib, live: 3 * mib, cycles: 7, stacks: 2 * mib, goroutines: 10})
	if !g.check(memSample{objects: 4 * mib, live: 3 * mib, cycles: 7, stacks: 40 * mib, goroutines: 10}) {
		t.Error("40 MiB of stacks for 10 goroutines not released")
	}
}

// TestReadMemory: the runtime serves every metric the releaser reads, so
// none silently reads as 0.
func TestReadMemory(t *testing.T) {
	runtime.GC()
	s := readMemory(memSamples())
	if s.objects == 0 || s.live == 0 || s.cycles == 0 || s.stacks == 0 || s.goroutines == 0 {
		t.Errorf("readMemory = %+v: a metric is missing", s)
	}
}
