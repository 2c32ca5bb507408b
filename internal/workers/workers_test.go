package workers

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after 5 s (idle workers %d, goroutines %d)", what, Idle(), runtime.NumGoroutine())
		}
		time.Sleep(time.Millisecond)
	}
}

// burst runs n tasks at once, each on its own worker, and returns when
// all have ended.
func burst(n int) {
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range n {
		wg.Add(1)
		Go(func() { defer wg.Done(); <-release })
	}
	close(release)
	wg.Wait()
}

// TestReuse: a finished task's goroutine waits, idle, and runs the next
// task; no goroutine is started for it.
func TestReuse(t *testing.T) {
	done := make(chan struct{})
	Go(func() { close(done) })
	<-done
	waitFor(t, "the worker parks", func() bool { return Idle() >= 1 })
	idle, goroutines := Idle(), runtime.NumGoroutine()
	ran := make(chan struct{})
	release := make(chan struct{})
	Go(func() { close(ran); <-release })
	<-ran
	if Idle() != idle-1 || runtime.NumGoroutine() != goroutines {
		t.Fatalf("running on a worker: idle %d (was %d), goroutines %d (was %d)", Idle(), idle, runtime.NumGoroutine(), goroutines)
	}
	close(release)
	waitFor(t, "the worker parks again", func() bool { return Idle() == idle })
}

// TestBounded: after a burst of 200 concurrent tasks at most maxIdle
// workers wait; the rest have exited.
func TestBounded(t *testing.T) {
	base := runtime.NumGoroutine() - Idle()
	burst(200)
	waitFor(t, "the surplus exits", func() bool {
		return Idle() == maxIdle && runtime.NumGoroutine() <= base+maxIdle
	})
}

// TestIdleExit: idle workers exit after pool.idleFor.
func TestIdleExit(t *testing.T) {
	setIdleFor := func(d time.Duration) time.Duration {
		pool.mu.Lock()
		defer pool.mu.Unlock()
		old := pool.idleFor
		pool.idleFor = d
		if pool.sweep != nil { // armed by an earlier test
			pool.sweep.Reset(d)
		}
		return old
	}
	defer setIdleFor(setIdleFor(50 * time.Millisecond))
	burst(8)
	waitFor(t, "idle workers exit", func() bool { return Idle() == 0 })
	// And the pool works on afterwards.
	done := make(chan struct{})
	Go(func() { close(done) })
	<-done
}

// deep uses about n KiB of stack, as a dial through gVisor does.
//
//go:noinline
func deep(n int) byte {
	var pad [1024]byte
	pad[n%len(pad)] = byte(n)
	if n == 0 {
		return pad[0]
	}
	return deep(n-1) + pad[n%len(pad)]
}

// BenchmarkStart compares a task that needs a 64 KiB stack run by the go
// statement and by Go: the go statement grows a new stack every time.
func BenchmarkStart(b *testing.B) {
	for _, bm := range []struct {
		name  string
		spawn func(func())
	}{{"go", func(f func()) { go f() }}, {"workers", Go}} {
		b.Run(bm.name, func(b *testing.B) {
			done := make(chan struct{})
			for range b.N {
				bm.spawn(func() { deep(64); done <- struct{}{} })
				<-done
			}
		})
	}
}
