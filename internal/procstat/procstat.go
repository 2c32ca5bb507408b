// Package procstat reads what Linux's /proc says of a process: its CPU
// time, context switches and resident memory. The bench and the end-to-end tests both
// measure processes they started (the endpoints, the gateway, TAYGA), and
// this is the one place that knows the files' formats.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPUTime is the user and system CPU time process pid has used so far, or
// -1 where /proc cannot tell.
func CPUTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	user, sys, err := parseStatTimes(b)
	if err != nil {
		return -1
	}
	return user + sys
}

// RSS is process pid's resident set size in bytes ("self" for this
// process: pid 0), or -1 where /proc cannot tell.
func RSS(pid int) int64 {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}
