package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"geneve64/internal/procstat"
)

// benchResult is one line of the benchmark table.
type benchResult struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	OfPct float64 `json:"percent_of_kernel,omitempty"` // the same figure as a share of kernel loopback
	// VsSOCKS is the figure over microsocks's in the same run: for
	// latency, how many times as long; for a rate, what fraction.
	VsSOCKS float64 `json:"ratio_to_microsocks,omitempty"`
	Comment string  `json:"comment,omitempty"`
	// Cost is set on the lines that say what a unit of work cost one
	// process (costs.go).
	Cost *unitCost `json:"cost,omitempty"`
}

type benchOpts struct {
	geneve64 string // the binary under test
	duration time.Duration
	jsonOut  bool
	quick    bool
	churn    int
	only     string
}

// want reports whether a group of figures runs: all of them unless --only
// names some.
func (o benchOpts) want(group string) bool {
	if o.only == "" {
		return true
	}
	for _, g := range strings.Split(o.only, ",") {
		if strings.TrimSpace(g) == group {
			return true
		}
	}
	return false
}

// connWorkers is how many clients open connections at once in the rate
// figures: one alone would measure the round-trip time, not the rate.
const connWorkers = 16

func machineInfo() map[string]any {
	host, _ := os.Hostname()
	return map[string]any{"cpus": runtime.NumCPU(), "go": runtime.Version(), "os": runtime.GOOS + "/" + runtime.GOARCH,
		"host": host, "date": time.Now().UTC().Format("2006-01-02")}
}

func printBench(w io.Writer, res []benchResult) {
	m := machineInfo()
	fmt.Fprintf(w, "geneve64 bench: %v CPUs, %v, %v, %v\n\n", m["cpus"], m["go"], m["os"], m["date"])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "what\tvalue\tunit\t% of kernel\t× microsocks\t")
	for _, r := range res {
		pct, vs := "", ""
		if r.OfPct > 0 {
			pct = fmt.Sprintf("%.1f%%", r.OfPct)
		}
		if r.VsSOCKS > 0 {
			vs = fmt.Sprintf("%.2f", r.VsSOCKS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t  %s\n", r.Name, fmtValue(r.Value), r.Unit, pct, vs, r.Comment) // right-aligned cells pad on the left
	}
	tw.Flush()
}

func fmtValue(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func runBench(log io.Writer, o benchOpts) ([]benchResult, error) {
	if o.quick {
		o.duration = min(o.duration, 500*time.Millisecond)
	}
	snk, err := startSink()
	if err != nil {
		return nil, err
	}
	defer snk.close()
	var res []benchResult
	add := func(r benchResult) {
		res = append(res, r)
		fmt.Fprintf(log, "  %-52s %s %s\n", r.Name, fmtValue(r.Value), r.Unit)
	}

	// The baseline: kernel TCP over loopback, same sink, same load.
	kernel1, note := bulk(snk.dial, 1, sinkUpload, o.duration, snk)
	add(benchResult{Name: "kernel loopback TCP, 1 stream", Value: kernel1, Unit: "Gbit/s", Comment: note})
	kp50, kp99, _ := pingPong(snk.dial, o.duration, nil)
	add(benchResult{Name: "kernel loopback TCP ping-pong p50", Value: us(kp50), Unit: "µs"})
	add(benchResult{Name: "kernel loopback TCP ping-pong p99", Value: us(kp99), Unit: "µs"})
	if o.want("latency") {
		addAll(add, costResults("per round trip, kernel loopback", pingPongCosts(snk.dial, o.duration, self)))
	}
	// The baseline a user would pick instead of a tunnel.
	ms, err := microsocksFigures(snk, o, add)
	if err != nil {
		return nil, err
	}

	if o.want("bulk") {
		if err := relayBulk(snk, o, add, kernel1); err != nil {
			return nil, err
		}
	}
	if o.want("bulk") || o.want("latency") {
		if err := bulkAndLatency(snk, o, add, kernel1, ms); err != nil {
			return nil, err
		}
	}
	if o.want("conn") {
		// Memory and connections on a pair of their own, so that nothing
		// the bulk runs grew is counted.
		bp, err := startBenchPair(o.geneve64, snk.port(), 0)
		if err != nil {
			return nil, err
		}
		err = memoryAndConnections(bp, snk, o, add, ms)
		bp.stop()
		if err != nil {
			return nil, err
		}
	}
	if o.want("key") {
		if err := keyFigures(snk, o, add, kernel1); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// bulkAndLatency: bulk TCP through SOCKS5 and a forward at both MTUs, and
// the ping-pong, unpinned as users run it, then pinned to one CPU as a
// diagnostic (what the tunnel costs without cross-CPU wake-ups).
func bulkAndLatency(snk *sink, o benchOpts, add func(benchResult), kernel1 float64, ms *plainSOCKS) error {
	for _, mtu := range []struct {
		name string
		mtu  int
	}{{"inner MTU 1394 (1500-byte outer path)", 0}, {"inner MTU 9000", 9000}} {
		if mtu.mtu != 0 && !o.want("bulk") {
			continue // latency is measured at the common MTU only
		}
		bp, err := startBenchPair(o.geneve64, snk.port(), mtu.mtu)
		if err != nil {
			return err
		}
		socksDial := bp.dialSOCKS
		fwdDial := func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp4", bp.forward)
		}
		streams := []int{1, 4, 16}
		if o.quick {
			streams = []int{1}
		}
		if !o.want("bulk") {
			streams = nil
		}
		for _, n := range streams {
			for _, dir := range []byte{sinkUpload, sinkDownload} {
				g, note := bulk(socksDial, n, dir, o.duration, snk)
				add(benchResult{Name: fmt.Sprintf("SOCKS5, %d stream(s) %s, %s", n, dirName(dir), mtu.name), Value: g, Unit: "Gbit/s", OfPct: 100 * g / kernel1, Comment: note})
				if n == 1 && mtu.mtu == 0 {
					addAll(add, costResults("per MiB, 1 stream "+dirName(dir)+", tunnel", bulkCosts(socksDial, dir, o.duration, snk, bp.costProcs(nearName, farName)...)))
				}
			}
		}
		if o.want("bulk") {
			g, note := bulk(fwdDial, 1, sinkUpload, o.duration, snk)
			add(benchResult{Name: "forward, 1 stream up, " + mtu.name, Value: g, Unit: "Gbit/s", OfPct: 100 * g / kernel1, Comment: note})
			g, note = bulk(fwdDial, 1, sinkDownload, o.duration, snk)
			add(benchResult{Name: "forward, 1 stream down, " + mtu.name, Value: g, Unit: "Gbit/s", OfPct: 100 * g / kernel1, Comment: note})
		}
		if mtu.mtu == 0 && o.want("latency") {
			p50, p99, _ := pingPong(socksDial, o.duration, nil)
			add(benchResult{Name: "SOCKS5 1-byte ping-pong p50", Value: us(p50), Unit: "µs", VsSOCKS: ms.ratio(us(p50), us(ms.get().p50))})
			add(benchResult{Name: "SOCKS5 1-byte ping-pong p99", Value: us(p99), Unit: "µs", VsSOCKS: ms.ratio(us(p99), us(ms.get().p99))})
			addAll(add, costResults("per round trip, tunnel", pingPongCosts(socksDial, o.duration, bp.costProcs(nearName, farName)...)))
			restore, pinned := pinAll(bp.near.Process.Pid, bp.far.Process.Pid)
			p50, p99, _ = pingPong(socksDial, o.duration, nil)
			restore()
			add(benchResult{Name: "SOCKS5 1-byte ping-pong p50, pinned", Value: us(p50), Unit: "µs", Comment: pinned})
			add(benchResult{Name: "SOCKS5 1-byte ping-pong p99, pinned", Value: us(p99), Unit: "µs", Comment: pinned})
		}
		bp.stop()
	}
	return nil
}

// keyFigures: what --key costs, through SOCKS5.
func keyFigures(snk *sink, o benchOpts, add func(benchResult), kernel1 float64) error {
	keyFile, err := os.CreateTemp("", "geneve64-bench-key")
	if err != nil {
		return err
	}
	defer os.Remove(keyFile.Name())
	keyFile.WriteString("QmVuY2htYXJrIGtleSwgbm90IGEgc2VjcmV0OiAzMiBieXRlcyE=\n")
	keyFile.Close()
	bp, err := startBenchPair(o.geneve64, snk.port(), 0, "--key", keyFile.Name())
	if err != nil {
		return err
	}
	defer bp.stop()
	socksDial := bp.dialSOCKS
	for _, dir := range []byte{sinkUpload, sinkDownload} {
		g, note := bulk(socksDial, 1, dir, o.duration, snk)
		add(benchResult{Name: fmt.Sprintf("with --key: SOCKS5, 1 stream %s, inner MTU 1370", dirName(dir)), Value: g, Unit: "Gbit/s", OfPct: 100 * g / kernel1, Comment: note})
	}
	p50, _, _ := pingPong(socksDial, o.duration, nil)
	add(benchResult{Name: "with --key: SOCKS5 1-byte ping-pong p50", Value: us(p50), Unit: "µs"})
	return nil
}

// The tunnel's processes in the cost lines.
const (
	nearName = "near end (SOCKS5, netstack)"
	farName  = "far end (netstack, egress)"
)

// addAll adds each of res.
func addAll(add func(benchResult), res []benchResult) {
	for _, r := range res {
		add(r)
	}
}

func dirName(d byte) string {
	if d == sinkUpload {
		return "up"
	}
	return "down"
}

// rssMB is a process's resident memory in MiB.
func rssMB(pid int) float64 { return float64(procstat.RSS(pid)) / (1 << 20) }

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// memoryAndConnections: idle memory, connection rate with 0 and with
// 1,000 connections open, the memory those add, the rate of the kernel and
// of the plain relays beside the tunnel's, and the churn run.
func memoryAndConnections(bp *benchPair, snk *sink, o benchOpts, add func(benchResult), ms *plainSOCKS) error {
	dial := bp.dialSOCKS
	time.Sleep(200 * time.Millisecond)
	nearIdle, farIdle := rssMB(bp.near.Process.Pid), rssMB(bp.far.Process.Pid)
	add(benchResult{Name: "RSS near end (SOCKS), idle", Value: nearIdle, Unit: "MB"})
	add(benchResult{Name: "RSS far end (egress), idle", Value: farIdle, Unit: "MB"})
	n := 1000
	if o.quick {
		n = 100
	}
	held := holdConns(dial, n)
	time.Sleep(200 * time.Millisecond)
	add(benchResult{Name: fmt.Sprintf("RSS near end, +%d idle connections", len(held)), Value: rssMB(bp.near.Process.Pid) - nearIdle, Unit: "MB"})
	add(benchResult{Name: fmt.Sprintf("RSS far end, +%d idle connections", len(held)), Value: rssMB(bp.far.Process.Pid) - farIdle, Unit: "MB"})
	rate, failed := connRate(dial, o.duration, 0)
	add(benchResult{Name: fmt.Sprintf("SOCKS5 connections with %d others open", len(held)), Value: rate, Unit: "conn/s", Comment: rateComment(failed)})
	for _, c := range held {
		c.Close()
	}
	time.Sleep(1500 * time.Millisecond) // their TIME-WAIT ends
	// The baseline: the same clients straight to the sink over kernel
	// loopback TCP, with this process doing the work of both ends.
	kernelRate, failed := connRate(snk.dial, o.duration, 0)
	add(benchResult{Name: "kernel loopback TCP connections (connect, first byte, close)", Value: kernelRate, Unit: "conn/s", Comment: rateComment(failed)})
	addAll(add, costResults("per connection, kernel loopback", connRateCosts(snk.dial, o.duration, self)))
	time.Sleep(timeWait)
	// The second baseline: the same front-end and relays with no tunnel
	// between them (see relay.go).
	rp, err := startRelayPair(snk.port())
	if err != nil {
		return err
	}
	relayRate, failed := connRate(rp.dialSOCKS, o.duration, 0)
	add(benchResult{Name: "plain relays, no tunnel: connections (CONNECT, first byte, close)", Value: relayRate, Unit: "conn/s", OfPct: 100 * relayRate / kernelRate, Comment: rateComment(failed)})
	addAll(add, costResults("per connection, plain relays", connRateCosts(rp.dialSOCKS, o.duration, rp.costProcs("SOCKS5 front-end", "relay")...)))
	rp.stop()
	time.Sleep(timeWait)
	rate, failed = connRate(bp.dialSOCKS, o.duration, 0)
	add(benchResult{Name: "SOCKS5 connections (CONNECT, first byte, close)", Value: rate, Unit: "conn/s", OfPct: 100 * rate / kernelRate,
		VsSOCKS: ms.ratio(rate, ms.get().connRate),
		Comment: fmt.Sprintf("%.0f%% of plain relays; %s", 100*rate/relayRate, rateComment(failed))})
	addAll(add, costResults("per connection, tunnel", connRateCosts(bp.dialSOCKS, o.duration, bp.costProcs(nearName, farName)...)))
	if o.churn > 0 {
		rate, failed := connRate(dial, 0, o.churn)
		add(benchResult{Name: fmt.Sprintf("SOCKS5 churn: %d connections back to back", o.churn), Value: rate, Unit: "conn/s", Comment: fmt.Sprintf("%d failed", failed)})
		add(benchResult{Name: "SOCKS5 churn: failed connections", Value: float64(failed), Unit: "conn"})
		// Closed connections linger in TIME-WAIT (1 s), and an endpoint
		// collects and hands back idle memory within a few seconds (see
		// internal/node): measure once both have had their time, with a
		// margin.
		time.Sleep(12 * time.Second)
		add(benchResult{Name: "RSS near end after churn (12 s later)", Value: rssMB(bp.near.Process.Pid), Unit: "MB"})
		add(benchResult{Name: "RSS far end after churn (12 s later)", Value: rssMB(bp.far.Process.Pid), Unit: "MB"})
	}
	return nil
}

// bulk runs n streams in direction dir for d and returns Gbit/s, with a
// note naming the streams that could not be opened or broke off early
// (empty when none did): fewer streams would move fewer bytes unseen.
func bulk(dial func(context.Context) (net.Conn, error), n int, dir byte, d time.Duration, snk *sink) (float64, string) {
	return bulkMeasured(dial, n, dir, d, snk, nil)
}

// bulkCosts measures what each of procs spends per MiB moved by one
// stream in direction dir, in a run of d.
func bulkCosts(dial func(context.Context) (net.Conn, error), dir byte, d time.Duration, snk *sink, procs ...costProc) []unitCost {
	var costs []unitCost
	bulkMeasured(dial, 1, dir, d, snk, func() func(int64) {
		m := startCosts(procs...)
		return func(bytes int64) { costs = m.stop(float64(bytes) / (1 << 20)) }
	})
	return costs
}

// bulkMeasured is bulk; when measure is set, it is called once the
// streams are open, and the function it returns once they are done, with
// the bytes moved.
func bulkMeasured(dial func(context.Context) (net.Conn, error), n int, dir byte, d time.Duration, snk *sink, measure func() func(bytes int64)) (float64, string) {
	ctx, cancel := context.WithTimeout(context.Background(), d+10*time.Second)
	defer cancel()
	var down, failed atomic.Int64
	var firstErr atomic.Value
	broke := func(err error) {
		if failed.Add(1) == 1 {
			firstErr.Store(err)
		}
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := dial(ctx)
		if err != nil {
			broke(err)
			continue
		}
		c.Write([]byte{dir})
		conns = append(conns, c)
	}
	var done func(int64)
	if measure != nil {
		done = measure()
	}
	before := snk.received.Load()
	begin := time.Now()
	end := begin.Add(d)
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			<-start
			buf := make([]byte, 256<<10)
			c.SetDeadline(end)
			for time.Now().Before(end) {
				var err error
				var k int
				if dir == sinkUpload {
					_, err = c.Write(buf)
				} else {
					k, err = c.Read(buf)
					down.Add(int64(k))
				}
				if err != nil {
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						broke(err)
					}
					return
				}
			}
		}(c)
	}
	close(start)
	wg.Wait()
	elapsed := time.Since(begin)
	for _, c := range conns {
		c.Close()
	}
	bytes := down.Load()
	if dir == sinkUpload {
		bytes = snk.received.Load() - before
	}
	if done != nil {
		done(bytes)
	}
	var note string
	if f := failed.Load(); f > 0 {
		note = fmt.Sprintf("%d of %d streams failed: %v", f, n, firstErr.Load())
	}
	return float64(bytes) * 8 / elapsed.Seconds() / 1e9, note
}

// pingPong measures 1-byte round trips over one connection for d, after
// 100 uncounted warm-up rounds. When measure is set, it is called once the
// warm-up is done, and the function it returns once the counted rounds
// are, with their number: a measurement of the round trips alone, not of
// the connection's opening and closing.
func pingPong(dial func(context.Context) (net.Conn, error), d time.Duration, measure func() func(rounds int)) (p50, p99 time.Duration, rounds int) {
	c, err := dial(context.Background())
	if err != nil {
		return 0, 0, 0
	}
	defer c.Close()
	c.Write([]byte{sinkPingPong})
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	var b [1]byte
	round := func() (time.Duration, bool) {
		t0 := time.Now()
		if _, err := c.Write(b[:]); err != nil {
			return 0, false
		}
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return 0, false
		}
		return time.Since(t0), true
	}
	for range 100 {
		if _, ok := round(); !ok {
			return 0, 0, 0
		}
	}
	var done func(int)
	if measure != nil {
		done = measure()
	}
	var lat []time.Duration
	for end := time.Now().Add(d); time.Now().Before(end); {
		rt, ok := round()
		if !ok {
			break
		}
		lat = append(lat, rt)
	}
	if done != nil {
		done(len(lat))
	}
	if len(lat) == 0 {
		return 0, 0, 0
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], len(lat)
}

// The cost lines are measured in a pass of their own after the figure's:
// perf's counting of system calls slows every system call on the machine
// (by a fifth of the connection rate here), which the figures must not
// carry.

// pingPongCosts measures what each of procs spends per round trip, in a
// ping-pong of d.
func pingPongCosts(dial func(context.Context) (net.Conn, error), d time.Duration, procs ...costProc) []unitCost {
	var costs []unitCost
	pingPong(dial, d, func() func(int) {
		m := startCosts(procs...)
		return func(n int) { costs = m.stop(float64(n)) }
	})
	return costs
}

// connRateCosts measures what each of procs spends per connection, in a
// connection-rate run of d.
func connRateCosts(dial func(context.Context) (net.Conn, error), d time.Duration, procs ...costProc) []unitCost {
	time.Sleep(timeWait) // the figure's connections leave TIME-WAIT first
	m := startCosts(procs...)
	begin := time.Now()
	rate, _ := connRate(dial, d, 0)
	return m.stop(rate * time.Since(begin).Seconds())
}

// timeWait is how long the bench waits for closed connections to leave
// TIME-WAIT (1 s in the endpoints' netstacks) before the next rate run.
const timeWait = 1500 * time.Millisecond

// self is this process in the cost lines: the clients and the sink.
var self = costProc{name: "clients and sink (this process)", pid: os.Getpid(), self: true}

// costProcs names bp's child processes for the cost lines, this process
// last.
func (bp *benchPair) costProcs(nearName, farName string) []costProc {
	var procs []costProc
	if bp.near != nil {
		procs = append(procs, costProc{name: nearName, pid: bp.near.Process.Pid, metrics: bp.metrics[0]})
	}
	if bp.far != nil {
		procs = append(procs, costProc{name: farName, pid: bp.far.Process.Pid, metrics: bp.metrics[1]})
	}
	return append(procs, self)
}

// connRate has connWorkers clients open a connection, exchange a byte and
// close it, over and over, for d or until total connections were made. It
// returns connections per second and how many failed.
func connRate(dial func(context.Context) (net.Conn, error), d time.Duration, total int) (float64, int) {
	var done, failed, started atomic.Int64
	begin := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < connWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [1]byte
			for {
				if total > 0 && started.Add(1) > int64(total) {
					return
				}
				if total == 0 && time.Since(begin) >= d {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				c, err := dial(ctx)
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				_, err = c.Write([]byte{sinkHold})
				if err == nil {
					_, err = io.ReadFull(c, b[:])
				}
				c.Close()
				if err != nil {
					failed.Add(1)
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(begin).Seconds(), int(failed.Load())
}

// rateComment says how a rate was measured and how many connections
// failed meanwhile: a rate counts only the ones that worked, so failures
// must show beside it.
func rateComment(failed int) string {
	return fmt.Sprintf("%d clients, %d failed", connWorkers, failed)
}

// holdConns opens n idle connections through the tunnel.
func holdConns(dial func(context.Context) (net.Conn, error), n int) []net.Conn {
	var held []net.Conn
	for i := 0; i < n; i++ {
		c, err := dial(context.Background())
		if err != nil {
			continue
		}
		c.Write([]byte{sinkHold})
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			c.Close()
			continue
		}
		held = append(held, c)
	}
	return held
}
