package procstat

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Usage is what a process has spent so far, summed over its threads.
type Usage struct {
	User, System time.Duration // CPU time in user space and in the kernel
	// Voluntary counts the times a thread gave up its CPU because it had
	// nothing to do (a blocking system call, a futex wait): each is a
	// sleep that something must later wake. Involuntary counts the times
	// the scheduler took the CPU away.
	Voluntary, Involuntary int64
}

// Sub is u less an earlier sample.
func (u Usage) Sub(earlier Usage) Usage {
	return Usage{User: u.User - earlier.User, System: u.System - earlier.System,
		Voluntary: u.Voluntary - earlier.Voluntary, Involuntary: u.Involuntary - earlier.Involuntary}
}

// ReadUsage samples process pid's usage. CPU time comes from the process's
// own stat file (which keeps the time of threads that have exited);
// context switches are summed over the threads alive now, as Linux keeps
// no process-wide count: a thread that exits between two samples takes
// its switches with it, which a Go process's long-lived threads rarely do.
func ReadUsage(pid int) (Usage, error) {
	var u Usage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	user, sys, err := parseStatTimes(b)
	if err != nil {
		return u, fmt.Errorf("procstat: /proc/%d/stat: %w", pid, err)
	}
	u.User, u.System = user, sys
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil {
		return u, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited since the listing
		}
		for _, line := range strings.Split(string(b), "\n") {
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
			switch {
			case err != nil:
			case name == "voluntary_ctxt_switches":
				u.Voluntary += n
			case name == "nonvoluntary_ctxt_switches":
				u.Involuntary += n
			}
		}
	}
	return u, nil
}

// parseStatTimes reads utime and stime from a /proc/PID/stat line.
func parseStatTimes(b []byte) (user, sys time.Duration, err error) {
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing one. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("no command name in %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	utime, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("stime: %w", err)
	}
	// Linux reports clock ticks of 1/100 s (USER_HZ) to user space.
	return time.Duration(utime) * 10 * time.Millisecond, time.Duration(stime) * 10 * time.Millisecond, nil
}
