// Package workers runs short-lived tasks on goroutines that outlive them.
//
// A new goroutine starts with a small stack, and a connection's first steps
// run deep: a SOCKS5 CONNECT dials through gVisor's TCP, an egress flow
// dials the host and completes gVisor's handshake. Every connection's
// goroutine then grew its stack through the same depths, copying it each
// time it doubled: 7% of the SOCKS5 end's CPU and 6% of the egress end's
// in a connection-rate profile. A worker that finished a task keeps its
// grown stack and waits for the next one, so only the first tasks pay.
//
// It is its own package because the front-ends (socks), the netstack's
// egress (stack) and the relays (relay) all start such goroutines, and
// none of them should import another for it.
package workers

import (
	"sync"
	"time"
)

// maxIdle bounds the workers waiting for work, and a burst's surplus
// exits at once. A worker keeps the deepest stack any of its tasks grew,
// and the runtime shrinks an idle stack only at a garbage collection,
// which stops when the load does: with 64 workers kept for 10 s, 200,000
// connections left the SOCKS5 end about 30 MB larger than with none kept.
const maxIdle = 32

// worker is a goroutine waiting for its next task.
type worker struct {
	task  chan func()
	since time.Time // idle since
}

var pool = struct {
	mu    sync.Mutex
	idle  []*worker // most recently idle last: it is taken first
	sweep *time.Timer
	// idleFor is how long a worker waits for work before it exits.
	idleFor time.Duration
}{idleFor: 2 * time.Second} // ample while connections come, brief once they stop

// Go runs f on an idle worker, or on a new goroutine that becomes one when
// f returns. Like the go statement, it does not wait for f.
func Go(f func()) {
	pool.mu.Lock()
	if n := len(pool.idle); n > 0 {
		w := pool.idle[n-1]
		pool.idle[n-1] = nil
		pool.idle = pool.idle[:n-1]
		pool.mu.Unlock()
		w.task <- f
		return
	}
	pool.mu.Unlock()
	go run(f)
}

// Idle is the number of workers waiting for work now.
func Idle() int {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	return len(pool.idle)
}

// run runs f, then others given to it, until the pool has no room for it
// or it has been idle for pool.idleFor.
func run(f func()) {
	w := &worker{task: make(chan func(), 1)}
	for f != nil {
		f()
		f = nil // let what f holds be collected while the worker waits
		if !park(w) {
			return
		}
		f = <-w.task
	}
}

// park adds w to the idle workers, reporting false when they are full.
func park(w *worker) bool {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if len(pool.idle) >= maxIdle {
		return false
	}
	w.since = time.Now()
	pool.idle = append(pool.idle, w)
	if pool.sweep == nil {
		pool.sweep = time.AfterFunc(pool.idleFor, sweep)
	}
	return true
}

// sweep ends the workers idle for pool.idleFor, oldest first, and runs again
// while any remain.
func sweep() {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	cut := time.Now().Add(-pool.idleFor)
	n := 0
	for n < len(pool.idle) && !pool.idle[n].since.After(cut) {
		pool.idle[n].task <- nil // ends the worker
		n++
	}
	rest := copy(pool.idle, pool.idle[n:])
	clear(pool.idle[rest:])
	pool.idle = pool.idle[:rest]
	if len(pool.idle) == 0 {
		pool.sweep = nil
		return
	}
	pool.sweep.Reset(pool.idleFor)
}
