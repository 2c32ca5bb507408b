package stack

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gateLink records each SendFrames call's frames; the first call waits
// until the test opens the gate, so that a send is under way.
type gateLink struct {
	entered chan struct{}
	gate    chan struct{}
	mu      sync.Mutex
	calls   [][]string
}

func (l *gateLink) SendFrames(frames [][]byte) (int, error) {
	l.mu.Lock()
	first := len(l.calls) == 0
	var call []string
	for _, f := range frames {
		call = append(call, string(f))
	}
	l.calls = append(l.calls, call)
	l.mu.Unlock()
	if first {
		close(l.entered)
		<-l.gate
	}
	return len(frames), nil
}

func batchOf(s *sender, frames ...string) *frameBatch {
	b := s.get()
	for _, f := range frames {
		b.add(append(b.next(), f...))
	}
	return b
}

// TestSenderQueuesBehindASend: a packet written while another goroutine
// is in the link's send returns at once and leaves after it, with the
// others queued meanwhile, in order, in one batch, from the sender's own
// goroutine; the link then stays hot, every packet going through the
// queue, until hotFor has passed with no sign of a stream. Past the
// bound, frames are dropped and counted.
func TestSenderQueuesBehindASend(t *testing.T) {
	l := &gateLink{entered: make(chan struct{}), gate: make(chan struct{})}
	s := newSender(l)
	defer s.close()
	clock := time.Unix(1000, 0)
	var clockMu sync.Mutex
	s.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	done := make(chan error)
	go func() { done <- s.send(batchOf(s, "a")) }()
	<-l.entered
	// The send is under way: these queue and return.
	for _, f := range []string{"b", "c"} {
		if err := s.send(batchOf(s, f, f+"2")); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]string, maxQueued)
	for i := range big {
		big[i] = "x"
	}
	s.send(batchOf(s, big...))
	if got := s.dropped.Load(); got != maxQueued {
		t.Errorf("%d frames dropped past the bound, want %d", got, maxQueued)
	}
	close(l.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitCalls(t, l, 2)
	// Hot: the next packet goes through the queue too.
	s.send(batchOf(s, "d"))
	waitCalls(t, l, 3)
	// Quiet for hotFor: back to sending on the writer's goroutine, which
	// the link sees as a call before send returns.
	clockMu.Lock()
	clock = clock.Add(hotFor)
	clockMu.Unlock()
	s.send(batchOf(s, "e"))
	l.mu.Lock()
	defer l.mu.Unlock()
	want := [][]string{{"a"}, {"b", "b2", "c", "c2"}, {"d"}, {"e"}}
	if len(l.calls) != len(want) {
		t.Fatalf("sends %q, want %q", l.calls, want)
	}
	for i := range want {
		if len(l.calls[i]) != len(want[i]) {
			t.Fatalf("sends %q, want %q", l.calls, want)
		}
		for j := range want[i] {
			if l.calls[i][j] != want[i][j] {
				t.Fatalf("sends %q, want %q", l.calls, want)
			}
		}
	}
}

// waitCalls waits until l has seen n calls.
func waitCalls(t *testing.T, l *gateLink, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		l.mu.Lock()
		k := len(l.calls)
		l.mu.Unlock()
		if k >= n {
			return
		}
	}
	t.Fatalf("the link saw fewer than %d sends: %q", n, l.calls)
}

// TestSenderStreamSigns: a write of several frames, or one close behind
// the one before, makes the link hot; a lone packet after a pause goes
// out on the writer's goroutine.
func TestSenderStreamSigns(t *testing.T) {
	l := &countLink{}
	s := newSender(l)
	defer s.close()
	clock := time.Unix(1000, 0)
	s.now = func() time.Time { return clock } // set only between sends
	inline := func(name string, want bool, frames ...string) {
		t.Helper()
		before := l.calls.Load()
		s.send(batchOf(s, frames...))
		if got := l.calls.Load() > before; got != want {
			t.Fatalf("%s: sent before send returned %v, want %v", name, got, want)
		}
		// Let the draining goroutine finish before the next write.
		for l.calls.Load() == before {
			time.Sleep(time.Millisecond)
		}
	}
	inline("a lone packet", true, "a")
	clock = clock.Add(time.Second)
	inline("a large segment cut up", false, "b1", "b2")
	clock = clock.Add(hotFor)
	inline("a lone packet, hotFor later", true, "c")
	clock = clock.Add(minGap / 2)
	inline("a packet close behind", false, "d")
	clock = clock.Add(hotFor)
	inline("a packet after a pause", true, "e")
}

type countLink struct{ calls atomic.Int64 }

func (l *countLink) SendFrames(frames [][]byte) (int, error) {
	l.calls.Add(1)
	return len(frames), nil
}

// TestSenderNoAllocs: a send allocates nothing once batches are reused,
// out on the writer's goroutine or through the queue.
func TestSenderNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	s := newSender(nopLink{})
	defer s.close()
	clock := time.Unix(1000, 0)
	s.now = func() time.Time { return clock }
	for _, mode := range []struct {
		name string
		step time.Duration
	}{{"on the writer's goroutine", hotFor}, {"through the queue", 0}} {
		for range 10 {
			s.send(batchOf(s, "warm", "up"))
		}
		// AllocsPerRun runs on one thread: the draining goroutine runs
		// only when this one yields, as a writer that blocks would.
		drained := func() {
			for {
				s.mu.Lock()
				idle := !s.busy && len(s.queue) == 0
				s.mu.Unlock()
				if idle {
					return
				}
				runtime.Gosched()
			}
		}
		drained()
		allocs := testing.AllocsPerRun(1000, func() {
			clock = clock.Add(mode.step)
			s.send(batchOf(s, "frame"))
			drained()
		})
		if allocs > 0 {
			t.Errorf("%s: %.2f allocations per send", mode.name, allocs)
		}
	}
}

type nopLink struct{}

func (nopLink) SendFrames(frames [][]byte) (int, error) { return len(frames), nil }
