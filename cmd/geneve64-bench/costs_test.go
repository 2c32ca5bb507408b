package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TestCostMeter: what this process spends is measured per unit, and a
// process that cannot be read is reported as not measured, not as free.
func TestCostMeter(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	gone := costProc{name: "gone", pid: 1 << 30}
	m := startCosts(self, gone)
	done := make(chan struct{})
	for range 20 {
		go func() { time.Sleep(time.Millisecond); done <- struct{}{} }()
		<-done
	}
	for end := time.Now().Add(30 * time.Millisecond); time.Now().Before(end); {
	} // burn some CPU
	costs := m.stop(10)
	if len(costs) != 2 {
		t.Fatalf("%d costs, want 2", len(costs))
	}
	c := costs[0]
	if !c.Measured || c.UserUS+c.SysUS <= 0 || c.Sleeps <= 0 || c.GoRuns <= 0 || c.GoCreated < 2 {
		t.Errorf("this process: %+v", c)
	}
	if perfWorks && c.Syscalls <= 0 {
		t.Errorf("perf counts here, but %v system calls", c.Syscalls)
	}
	if costs[1].Measured {
		t.Errorf("a process that does not exist: %+v", costs[1])
	}
	res := costResults("per test", costs)
	if len(res) != 2 || res[0].Value <= 0 || !strings.Contains(res[0].Comment, "goroutine runs") ||
		!strings.HasPrefix(res[1].Comment, "not measured") {
		t.Errorf("lines: %+v", res)
	}
}

// TestPerfOutput: perf stat's CSV is read by event name, and a file that
// lacks an event is no count at all.
func TestPerfOutput(t *testing.T) {
	for _, tc := range []struct {
		csv  string
		want [3]float64
		ok   bool
	}{
		{"# started on x\n\n1200,,raw_syscalls:sys_enter,2000,100.00,,\n30,,context-switches,2000,100.00,0.015,K/sec\n2,,cpu-migrations,2000,100.00,,\n",
			[3]float64{1200, 30, 2}, true},
		{"1200,,raw_syscalls:sys_enter,2000,100.00,,\n<not counted>,,cpu-migrations,0,0.00,,\n", [3]float64{}, false},
	} {
		dir := t.TempDir()
		out := filepath.Join(dir, "stat")
		if err := os.WriteFile(out, []byte(tc.csv), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sleep", "10") // stands in for perf: stop interrupts it
		if err := cmd.Start(); err != nil {
			t.Skip("no sleep command:", err)
		}
		p := &perfCount{cmd: cmd, out: out}
		s, sw, mig, ok := p.stop()
		if ok != tc.ok || (ok && [3]float64{s, sw, mig} != tc.want) {
			t.Errorf("%q: %v %v %v %v, want %v %v", tc.csv, s, sw, mig, ok, tc.want, tc.ok)
		}
	}
}

// TestScrapeGoSample: the counters are read from a page served as the
// endpoints serve theirs (the Go collector with the scheduler's series),
// so a renamed series fails here rather than turning into zeros.
func TestScrapeGoSample(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	g0 := scrapeGoSample(srv.URL)
	for range 100 {
		done := make(chan struct{})
		go func() { time.Sleep(time.Microsecond); close(done) }()
		<-done
	}
	g1 := scrapeGoSample(srv.URL)
	if !g0.ok || !g0.waitOK || !g1.ok {
		t.Fatalf("samples not read: %+v %+v", g0, g1)
	}
	if g1.created-g0.created < 100 || g1.runs <= g0.runs || g1.allocs <= g0.allocs || g1.bytes <= g0.bytes {
		t.Errorf("100 goroutines later: %+v, then %+v", g0, g1)
	}
	for name, h := range map[string]http.Handler{
		"no page":                 http.NotFoundHandler(),
		"a page without a series": promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}),
	} {
		other := httptest.NewServer(h)
		if g := scrapeGoSample(other.URL); g.ok || g.waitOK {
			t.Errorf("%s: %+v", name, g)
		}
		other.Close()
	}
}
