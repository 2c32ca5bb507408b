package procstat

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	} // burn some CPU
	if c := CPUTime(os.Getpid()); c <= 0 {
		t.Fatalf("CPU time %v", c)
	}
	if r := RSS(0); r <= 0 {
		t.Fatalf("RSS %d", r)
	}
	if RSS(os.Getpid()) <= 0 {
		t.Fatal("RSS by pid")
	}
	if CPUTime(1<<30) != -1 || RSS(1<<30) != -1 {
		t.Fatal("a process that does not exist")
	}
}

// TestUsageCountsSleeps: a thread that sleeps and is woken gives up its
// CPU voluntarily, and ReadUsage counts it among the process's threads.
func TestUsageCountsSleeps(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	before, err := ReadUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		time.Sleep(time.Millisecond)
	}
	d, err := ReadUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	d = d.Sub(before)
	if d.Voluntary < 20 || d.User < 0 || d.System < 0 {
		t.Errorf("20 sleeps gave %+v", d)
	}
	if _, err := ReadUsage(1 << 30); err == nil {
		t.Error("a process that does not exist: no error")
	}
	if _, _, err := parseStatTimes([]byte("12 (a b) S 1 2")); err == nil {
		t.Error("a short stat line: no error")
	}
}
