//go:build linux

package e2e

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"geneve64/internal/procstat"

	"golang.org/x/sys/unix"
)

// BenchmarkKernelGatewayRate measures, on the two-site bed in network
// namespaces, the packets per second geneve64 gateway relays each way
// beside TAYGA translating plain UDP through the same NAT64 host, at a
// ladder of offered rates, with the loss at each. The load is 1,400-byte
// datagrams (GENEVE with the option, for the gateway), sent from one
// namespace and counted in another; sender, NAT64 host and receiver share
// the machine's cores, as in every figure here. It runs once, whatever
// b.N:
//
//	go test -run - -bench KernelGatewayRate -benchtime 1x ./e2e
//
// Each path's figure is the highest rate delivered with less than 0.1%
// loss; the table of every step goes to the log. The first path has no
// translator at all (the same sender, the receiver on the NAT64 host): it
// is what the bed itself allows.
func BenchmarkKernelGatewayRate(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs once: -benchtime 1x")
	}
	l := newNATLabWith(b, natLabOptions{gwB: true})
	paths := []struct {
		name          string
		from, fromAdr string
		to, toAdr     string
		listen        string
		opt           []string
	}{
		// The bed's ceiling: the same sender and receiver with no
		// translator, the receiver on the NAT64 host itself.
		{"no translator (ceiling)", l.inet, "198.51.100.1:7001", l.natB, "203.0.113.90:7001", "203.0.113.90:7001", nil},
		{"gateway, IPv4 to IPv6", l.inet, "198.51.100.1:6081", l.siteB, "203.0.113.90:6081", "[2001:db8:b::1]:6081", []string{"2001:db8:a::1", "2001:db8:b::1"}},
		{"gateway, IPv6 to IPv4", l.siteB, "[2001:db8:b::1]:6081", l.inet, "[2001:db8:64::198.51.100.1]:6081", "198.51.100.1:6081", []string{"2001:db8:b::1", "2001:db8:a::1"}},
		{"TAYGA, IPv6 to IPv4", l.siteB, "[2001:db8:b::1]:7000", l.inet, "[2001:db8:64::198.51.100.1]:7000", "198.51.100.1:7000", nil},
		// The port is the mapping's, made just before (see below).
		{"TAYGA, IPv4 to IPv6", l.inet, "198.51.100.1:7000", l.siteB, "203.0.113.90:PORT", "[2001:db8:b::1]:7000", nil},
	}
	rates := []int{25_000, 50_000, 100_000, 150_000, 200_000, 300_000, 400_000}
	const step = 2 * time.Second
	best := map[string]float64{}
	var table strings.Builder
	fmt.Fprintf(&table, "%-26s %10s %8s %11s %8s %12s %11s %10s\n", "path", "offered/s", "sent/s", "delivered/s", "loss", "socket drops", "CPU µs/pkt", "allocs/pkt")
	for i, p := range paths {
		if strings.HasSuffix(p.toAdr, ":PORT") { // made now, so that it lives through the path's runs
			p.toAdr = strings.TrimSuffix(p.toAdr, "PORT") + l.taygaMapping()
		}
		translator := l.proc("gateway-" + l.natB)
		if strings.HasPrefix(p.name, "TAYGA") {
			translator = l.proc("tayga-" + l.natB)
		}
		for _, rate := range rates {
			c := l.start(p.to, fmt.Sprintf("count-%d-%d", i, rate), []string{"GENEVE64_HELPER=udp-count " + p.listen}, helperExe(b), "-test.run=^TestHelperProcess$")
			l.waitLog(c, "listening")
			cpu0 := procstat.CPUTime(translator)
			mallocs0 := l.gatewayMallocs()
			sent := l.flood(p.from, p.fromAdr, p.toAdr, rate, step, p.opt...)
			time.Sleep(300 * time.Millisecond)
			cpu := procstat.CPUTime(translator) - cpu0
			mallocs := l.gatewayMallocs() - mallocs0
			c.cmd.Process.Signal(unix.SIGTERM)
			c.cmd.Wait()
			m := regexp.MustCompile(`count (\d+) drops (\d+)`).FindStringSubmatch(c.logText())
			if m == nil {
				b.Fatalf("%s: counter said %q", p.name, c.logText())
			}
			got, _ := strconv.Atoi(m[1])
			loss := 100 * (1 - float64(got)/float64(max(sent, 1)))
			delivered := float64(got) / step.Seconds()
			perPkt := "-"
			if translator > 0 && got > 0 {
				perPkt = fmt.Sprintf("%.1f", float64(cpu.Microseconds())/float64(got))
			}
			allocs := "-"
			if strings.HasPrefix(p.name, "gateway") && got > 0 {
				// The scrape between counts allocates too: a few
				// thousand, against 50,000 packets and more.
				allocs = fmt.Sprintf("%.3f", float64(mallocs)/float64(got))
			}
			fmt.Fprintf(&table, "%-26s %10d %8.0f %11.0f %7.2f%% %12s %11s %10s\n", p.name, rate, float64(sent)/step.Seconds(), delivered, loss, m[2], perPkt, allocs)
			if loss < 0.1 && delivered > best[p.name] {
				best[p.name] = delivered
			}
			if loss > 20 {
				break // past saturation: higher rates only lose more
			}
		}
	}
	for _, line := range strings.Split(l.metrics(l.natB), "\n") {
		if strings.HasPrefix(line, "geneve64_gateway_kernel_drops_total") || strings.HasPrefix(line, "geneve64_gateway_relayed_total") {
			fmt.Fprintln(&table, line)
		}
	}
	b.Logf("\n%s", table.String())
	for _, p := range paths {
		b.ReportMetric(best[p.name], strings.NewReplacer(" ", "-", ",", "").Replace(p.name)+"-pps")
	}
}

// gatewayMallocs is the heap allocations site B's gateway has made, from
// its own metrics.
func (l *natLab) gatewayMallocs() int64 {
	return counter(l.t, l.metrics(l.natB), "go_memstats_mallocs_total")
}

// taygaMapping has site B send through TAYGA and returns the public port
// masquerade gave it, which the IPv4 side can send back to while conntrack
// keeps it (30 s idle; every datagram refreshes it).
func (l *natLab) taygaMapping() string {
	probe := l.start(l.inet, "probe", []string{"GENEVE64_HELPER=udp-count 198.51.100.1:7000"}, helperExe(l.t), "-test.run=^TestHelperProcess$")
	l.waitLog(probe, "listening")
	l.flood(l.siteB, "[2001:db8:b::1]:7000", "[2001:db8:64::198.51.100.1]:7000", 10, time.Second)
	l.waitLog(probe, "first from")
	probe.cmd.Process.Signal(unix.SIGTERM)
	probe.cmd.Wait()
	mapped := regexp.MustCompile(`first from (\S+)`).FindStringSubmatch(probe.logText())[1]
	_, port, _ := strings.Cut(mapped, ":")
	return port
}

// proc returns the process id the lab started under name, or 0.
func (l *lab) proc(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.procs {
		if p.name == name {
			return p.cmd.Process.Pid
		}
	}
	return 0
}

// flood sends rate datagrams per second for d from src in ns to dst, as
// GENEVE with the option's endpoints when given, and returns how many
// went.
func (l *natLab) flood(ns, src, dst string, rate int, d time.Duration, opt ...string) int {
	args := []string{"netns", "exec", ns, helperExe(l.t), "-test.run=^TestHelperProcess$"}
	spec := fmt.Sprintf("udp-flood %s %s %d %s 1400 %s", src, dst, rate, d, strings.Join(opt, " "))
	cmd := exec.Command("ip", args...)
	cmd.Env = append(cmd.Environ(), "GENEVE64_HELPER="+strings.TrimSpace(spec))
	out, err := cmd.CombinedOutput()
	m := regexp.MustCompile(`sent (\d+)`).FindStringSubmatch(string(out))
	if err != nil || m == nil {
		l.t.Fatalf("flood %s: %v\n%s", spec, err, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
