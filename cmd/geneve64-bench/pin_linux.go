//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// pinAll puts this process (every thread) and pids on one CPU and returns
// a function that restores each one's previous affinity, and the CPU used.
// A wake-up that crosses CPUs costs tens of microseconds on a small VM, more
// than the tunnel itself adds; pinning measures the tunnel.
func pinAll(pids ...int) (restore func(), desc string) {
	var one unix.CPUSet
	one.Set(0)
	type saved struct {
		tid int
		set unix.CPUSet
	}
	var undo []saved
	pin := func(tid int) {
		var old unix.CPUSet
		if unix.SchedGetaffinity(tid, &old) == nil && unix.SchedSetaffinity(tid, &one) == nil {
			undo = append(undo, saved{tid, old})
		}
	}
	for _, pid := range append([]int{os.Getpid()}, pids...) {
		tids, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, t := range tids {
			var tid int
			fmt.Sscan(t.Name(), &tid)
			pin(tid)
		}
	}
	return func() {
		for _, s := range undo {
			unix.SchedSetaffinity(s.tid, &s.set)
		}
	}, "pinned to CPU 0"
}

// dieWithParent has cmd's process killed if the benchmark dies first, so
// an interrupted run leaves no endpoints behind to skew the next one.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
