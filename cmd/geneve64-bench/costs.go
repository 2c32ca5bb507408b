package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"geneve64/internal/procstat"
)

// What a round trip, a connection or a MiB is made of, per process: CPU
// time in user space and in the kernel, system calls, the times a thread
// slept and was woken (voluntary context switches) or had its CPU taken,
// moves between CPUs, and for Go processes the goroutines run and created
// and the heap allocations. A tunnel that costs more than a plain proxy
// costs it in one of these, and the same run's baselines say which.
//
// System calls, CPU moves and the context switches of threads that exit
// during the measurement need perf (Debian's linux-perf) and the right to
// count another process's events (root, or perf_event_paranoid at most 1
// for one's own processes); without it those are left out or taken from
// /proc, and the rest is still measured.

// costProc is a process whose costs are measured.
type costProc struct {
	name    string
	pid     int
	metrics string // a geneve64 child's metrics address, for its goroutine counts
	self    bool   // this process: goroutine counts from runtime/metrics
}

// unitCost is what one unit of work (a round trip, a connection, a MiB)
// cost a process. A count that could not be measured is negative; when
// Measured is false, none could.
type unitCost struct {
	Proc        string  `json:"process"`
	Measured    bool    `json:"measured"`
	UserUS      float64 `json:"user_us"`
	SysUS       float64 `json:"system_us"`
	Syscalls    float64 `json:"syscalls"`
	Switches    float64 `json:"context_switches"`
	Sleeps      float64 `json:"sleeps"` // of the threads alive throughout
	Preempted   float64 `json:"preempted"`
	Migrations  float64 `json:"cpu_migrations"`
	GoRuns      float64 `json:"goroutine_runs"`
	GoCreated   float64 `json:"goroutines_created"`
	GoRunWaitUS float64 `json:"goroutine_run_wait_us"`
	Allocs      float64 `json:"heap_allocations"`
	AllocBytes  float64 `json:"heap_allocated_bytes"`
}

// goSample is a Go process's scheduler counters.
type goSample struct {
	runs    float64 // goroutines scheduled to run again after stopping
	waitSum float64 // seconds those spent runnable before they ran
	waitOK  bool    // waitSum is known (a child's page has it; runtime/metrics keeps no sum)
	created float64
	allocs  float64 // heap allocations so far
	bytes   float64 // heap bytes allocated so far
	ok      bool
}

type costMeter struct {
	procs []costProc
	usage []procstat.Usage
	read  []bool // usage was read
	gos   []goSample
	perf  []*perfCount
}

// startCosts samples every process now, and starts perf on each where it
// can count.
func startCosts(procs ...costProc) *costMeter {
	m := &costMeter{procs: procs}
	for _, p := range procs {
		m.perf = append(m.perf, startPerf(p.pid))
	}
	if perfWorks {
		// perf prints nothing once it has attached; what it misses of
		// the first moments would be counted as nothing.
		time.Sleep(300 * time.Millisecond)
	}
	for _, p := range procs {
		u, err := procstat.ReadUsage(p.pid)
		m.usage, m.read = append(m.usage, u), append(m.read, err == nil)
		m.gos = append(m.gos, p.goSample())
	}
	return m
}

// stop samples again and divides what each process spent by units.
func (m *costMeter) stop(units float64) []unitCost {
	var out []unitCost
	for i, p := range m.procs {
		c := unitCost{Proc: p.name, UserUS: -1, SysUS: -1, Syscalls: -1, Switches: -1, Sleeps: -1, Preempted: -1, Migrations: -1,
			GoRuns: -1, GoCreated: -1, GoRunWaitUS: -1, Allocs: -1, AllocBytes: -1}
		u, err := procstat.ReadUsage(p.pid)
		syscalls, switches, migrations, perfOK := m.perf[i].stop()
		if err != nil || !m.read[i] || units <= 0 {
			out = append(out, c) // nothing measured: a process that ended, or no work done
			continue
		}
		d := u.Sub(m.usage[i])
		c.Measured = true
		c.UserUS, c.SysUS = us(d.User)/units, us(d.System)/units
		c.Sleeps, c.Preempted = float64(d.Voluntary)/units, float64(d.Involuntary)/units
		c.Switches = c.Sleeps + c.Preempted
		if perfOK {
			// perf also counts the threads that exited meanwhile
			// (microsocks runs a thread per client), which /proc
			// no longer lists.
			c.Syscalls, c.Switches, c.Migrations = syscalls/units, switches/units, migrations/units
		}
		if g0, g1 := m.gos[i], p.goSample(); g0.ok && g1.ok {
			runs := g1.runs - g0.runs
			c.GoRuns = goTrackingPeriod * runs / units
			c.GoCreated = (g1.created - g0.created) / units
			c.Allocs, c.AllocBytes = (g1.allocs-g0.allocs)/units, (g1.bytes-g0.bytes)/units
			if runs > 0 && g0.waitOK && g1.waitOK {
				c.GoRunWaitUS = (g1.waitSum - g0.waitSum) / runs * 1e6
			}
		}
		out = append(out, c)
	}
	return out
}

// goTrackingPeriod: the Go runtime times one in eight of a goroutine's
// returns to running (runtime.gTrackingPeriod), so the count of
// /sched/latencies is an eighth of the goroutines run.
const goTrackingPeriod = 8

// goSample reads the process's scheduler counters: from runtime/metrics
// for this process, from a geneve64 child's metrics page for a child.
func (p costProc) goSample() goSample {
	switch {
	case p.self:
		s := []metrics.Sample{{Name: "/sched/latencies:seconds"}, {Name: "/sched/goroutines-created:goroutines"},
			{Name: "/gc/heap/allocs:objects"}, {Name: "/gc/heap/allocs:bytes"}}
		metrics.Read(s)
		var g goSample
		if s[0].Value.Kind() == metrics.KindFloat64Histogram {
			h := s[0].Value.Float64Histogram()
			for _, n := range h.Counts {
				g.runs += float64(n)
			}
			g.ok = true
		}
		if s[1].Value.Kind() == metrics.KindUint64 {
			g.created = float64(s[1].Value.Uint64())
		}
		if s[2].Value.Kind() == metrics.KindUint64 && s[3].Value.Kind() == metrics.KindUint64 {
			g.allocs, g.bytes = float64(s[2].Value.Uint64()), float64(s[3].Value.Uint64())
		}
		return g
	case p.metrics != "":
		return scrapeGoSample("http://" + p.metrics + "/metrics")
	}
	return goSample{}
}

// scrapeGoSample reads the scheduler and allocation counters from a
// Prometheus page.
func scrapeGoSample(url string) goSample {
	var g goSample
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return g
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return g
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return g
	}
	// The value of a family's first (here, only) series.
	first := func(name string) *dto.Metric {
		if f := families[name]; f != nil && len(f.GetMetric()) > 0 {
			return f.GetMetric()[0]
		}
		return nil
	}
	if m := first("go_sched_latencies_seconds"); m.GetHistogram() != nil {
		g.runs, g.waitSum = float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()
		g.ok, g.waitOK = true, true
	}
	g.created = first("go_sched_goroutines_created_goroutines_total").GetCounter().GetValue()
	g.allocs = first("go_memstats_mallocs_total").GetCounter().GetValue()
	g.bytes = first("go_memstats_alloc_bytes_total").GetCounter().GetValue()
	return g
}

// perfCount is a perf stat process counting one process's system calls,
// context switches and CPU migrations, its threads' and those it starts.
type perfCount struct {
	cmd *exec.Cmd
	out string
}

// perfWorks is whether perf counts here, asked once.
var perfWorks = func() bool {
	if _, err := exec.LookPath("perf"); err != nil {
		return false
	}
	return exec.Command("perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "true").Run() == nil
}()

func startPerf(pid int) *perfCount {
	if !perfWorks {
		return nil
	}
	dir, err := os.MkdirTemp("", "geneve64-bench-perf")
	if err != nil {
		return nil
	}
	out := filepath.Join(dir, "stat")
	cmd := exec.Command("perf", "stat", "-x,", "-o", out, "-e", "raw_syscalls:sys_enter,context-switches,cpu-migrations", "-p", strconv.Itoa(pid))
	dieWithParent(cmd)
	if cmd.Start() != nil {
		os.RemoveAll(dir)
		return nil
	}
	return &perfCount{cmd: cmd, out: out}
}

// stop ends the count and returns it.
func (p *perfCount) stop() (syscalls, switches, migrations float64, ok bool) {
	if p == nil {
		return 0, 0, 0, false
	}
	defer os.RemoveAll(filepath.Dir(p.out))
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
	b, err := os.ReadFile(p.out)
	if err != nil {
		return 0, 0, 0, false
	}
	var have int
	for _, line := range strings.Split(string(b), "\n") {
		// CSV: value,unit,event,...
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		switch f[2] {
		case "raw_syscalls:sys_enter":
			syscalls, have = v, have+1
		case "context-switches":
			switches, have = v, have+1
		case "cpu-migrations":
			migrations, have = v, have+1
		}
	}
	return syscalls, switches, migrations, have == 3
}

// costResults turns unit costs into table lines: CPU per unit as the
// value, the rest in the comment.
func costResults(what string, costs []unitCost) []benchResult {
	var res []benchResult
	for _, c := range costs {
		if !c.Measured {
			res = append(res, benchResult{Name: fmt.Sprintf("%s, %s", what, c.Proc), Unit: "-",
				Comment: "not measured: the process could not be read, or no work was done"})
			continue
		}
		var parts []string
		parts = append(parts, fmt.Sprintf("user %.1f + system %.1f µs", c.UserUS, c.SysUS))
		if c.Syscalls >= 0 {
			parts = append(parts, fmt.Sprintf("%.1f system calls", c.Syscalls))
		}
		parts = append(parts, fmt.Sprintf("%.2f context switches (%.2f sleeps)", c.Switches, c.Sleeps))
		if c.Migrations >= 0 {
			parts = append(parts, fmt.Sprintf("%.2f CPU moves", c.Migrations))
		}
		if c.GoRuns >= 0 {
			if c.GoRunWaitUS >= 0 {
				parts = append(parts, fmt.Sprintf("~%.1f goroutine runs (%.0f µs runnable each)", c.GoRuns, c.GoRunWaitUS))
			} else {
				parts = append(parts, fmt.Sprintf("~%.1f goroutine runs", c.GoRuns))
			}
			if c.GoCreated > 0 {
				parts = append(parts, fmt.Sprintf("%.2f goroutines created", c.GoCreated))
			}
			parts = append(parts, fmt.Sprintf("%.1f heap allocations (%.0f bytes)", c.Allocs, c.AllocBytes))
		}
		cc := c
		res = append(res, benchResult{Name: fmt.Sprintf("%s, %s", what, c.Proc), Value: c.UserUS + c.SysUS, Unit: "µs CPU",
			Comment: strings.Join(parts, "; "), Cost: &cc})
	}
	return res
}
