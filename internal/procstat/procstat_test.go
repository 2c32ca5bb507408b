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
