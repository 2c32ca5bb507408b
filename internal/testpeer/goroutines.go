package testpeer

import (
	"runtime"

	"geneve64/internal/workers"
)

// Goroutines counts the goroutines that are not idle workers: what a test
// compares with its baseline to find leaks. Idle workers (package workers)
// wait on purpose, and exit within seconds of their last task.
func Goroutines() int { return runtime.NumGoroutine() - workers.Idle() }
