package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/proxy"
)

// binary builds cmd/geneve64 once for the CLI tests.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "geneve64-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "geneve64")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/geneve64").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// proc is a running geneve64 whose JSON log lines are collected.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []map[string]any
	raw   strings.Builder
	done  chan struct{}
}

func startBinary(t *testing.T, args ...string) *proc {
	t.Helper()
	watch(t)
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: exec.Command(bin, append(args, "--log-format", "json")...), done: make(chan struct{})}
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			p.mu.Lock()
			p.raw.WriteString(sc.Text() + "\n")
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				p.lines = append(p.lines, m)
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		p.cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", args[0], p.log())
		}
	})
	return p
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw.String()
}

// field waits for a log line with msg whose key matches and returns it.
func (p *proc) field(t *testing.T, msg, key string, match func(string) bool) string {
	t.Helper()
	var v string
	eventually(t, "log line "+msg, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, l := range p.lines {
			if l["msg"] == msg {
				if x, ok := l[key]; ok {
					if s := fmt.Sprint(x); match == nil || match(s) {
						v = s
						return true
					}
				}
			}
		}
		return false
	})
	return v
}

func freeUDPPort(t *testing.T) int {
	pc, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// TestCLI runs two endpoints as separate processes on loopback, with the
// original's argument forms, and uses them as a user would.
func TestCLI(t *testing.T) {
	curl := needCurl(t)
	far := startFarHost(t)
	hp := strconv.Itoa(far.port)
	p1, p2 := freeUDPPort(t), freeUDPPort(t)
	srv := startBinary(t, "server", "42", fmt.Sprintf("[::1]:%d", p1), "::1",
		"--egress", "--egress-loopback", "--addr", "10.42.0.1/24", "--addr", "fd42::1/64", "--keepalive", "1s",
		"--reverse", "10.42.0.1:7000=127.0.0.1:"+hp, "--metrics", "127.0.0.1:0")
	srv.field(t, "outer socket listening", "addr", nil)
	cli := startBinary(t, "client", "42", fmt.Sprintf("[::1]:%d", p2), fmt.Sprintf("[::1]:%d", p1), "::1",
		"--addr", "10.42.0.2/24", "--route", "0.0.0.0/0@10.42.0.1", "--dns", "10.42.0.1", "--keepalive", "1s",
		"--socks", "127.0.0.1:0", "--forward", "127.0.0.1:0=10.42.0.1:"+hp)
	socksAddr := cli.field(t, "SOCKS5 listening", "addr", nil)
	fwdAddr := cli.field(t, "forward listening", "addr", nil)
	path := srv.field(t, "peer heard", "path", nil)
	if !strings.HasSuffix(path, fmt.Sprintf(":%d", p2)) {
		t.Fatalf("server learned path %s, want the client's port %d", path, p2)
	}

	// curl through SOCKS to the far host's HTTP server, by name.
	out, err := exec.Command(curl, "-sS", "--max-time", "20", "--socks5-hostname", socksAddr, far.url("localhost", "/")).CombinedOutput()
	if err != nil || string(out) != "hello from the far side\n" {
		t.Fatalf("curl via SOCKS: %q %v", out, err)
	}
	// The local forward.
	out, err = exec.Command(curl, "-sS", "--max-time", "20", "http://"+fwdAddr+"/").CombinedOutput()
	if err != nil || string(out) != "hello from the far side\n" {
		t.Fatalf("curl via --forward: %q %v", out, err)
	}
	// The reverse forward, from inside the tunnel (through SOCKS).
	out, err = exec.Command(curl, "-sS", "--max-time", "20", "--socks5-hostname", socksAddr, "http://10.42.0.1:7000/").CombinedOutput()
	if err != nil || string(out) != "hello from the far side\n" {
		t.Fatalf("curl via --reverse: %q %v", out, err)
	}

	// Metrics and health.
	maddr := srv.field(t, "metrics listening", "addr", nil)
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`geneve64_frames_total{direction="in"}`, `geneve64_drops_total{reason="vni"} 0`, "geneve64_peers 1", "geneve64_peer_rtt_seconds", "geneve64_tcp_segments_merged_total"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
	// The server's own metrics listener is not the peers' to read, even
	// with --egress-loopback: refused, and counted.
	_, mport, _ := net.SplitHostPort(maddr)
	if out, err := exec.Command(curl, "-sS", "--max-time", "20", "--socks5-hostname", socksAddr, "http://10.42.0.1:"+mport+"/debug/tcp").CombinedOutput(); err == nil {
		t.Fatalf("the server's metrics reached through its egress:\n%s", out)
	}
	resp, err = http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `geneve64_egress_refused_total{reason="denied"} 1`) {
		t.Fatalf("the refusal is not counted:\n%s", body)
	}
	if resp, err := http.Get("http://" + maddr + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	// The netstack's TCP connections: the reverse forward's listener.
	resp, err = http.Get("http://" + maddr + "/debug/tcp")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "LISTEN 10.42.0.1:7000 -> ") {
		t.Fatalf("/debug/tcp lacks the reverse forward's listener:\n%s", body)
	}

	// SIGTERM: exit 0 within 2 s.
	for _, p := range []*proc{cli, srv} {
		start := time.Now()
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
		err := p.cmd.Wait()
		if err != nil || time.Since(start) > 2*time.Second {
			t.Fatalf("after SIGTERM: %v in %v", err, time.Since(start))
		}
	}
}

// TestCLIConfigFile: settings from a TOML file, with a flag overriding one.
func TestCLIConfigFile(t *testing.T) {
	p1 := freeUDPPort(t)
	cfg := filepath.Join(t.TempDir(), "server.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`vni = 7
local = "[::1]:%d"
remote = "::1"
addr = ["10.9.0.1/24"]
socks = "127.0.0.1:1"
log-level = "debug"
`, p1)), 0o600)
	p := startBinary(t, "server", "--config", cfg, "--socks", "127.0.0.1:0")
	addr := p.field(t, "SOCKS5 listening", "addr", nil)
	if strings.HasSuffix(addr, ":1") {
		t.Fatalf("the flag did not override the file: %s", addr)
	}
	if mtu := p.field(t, "inner network up", "mtu", nil); mtu != "1394" {
		t.Fatalf("inner MTU %s from a 1500-byte path, want 1394", mtu)
	}
	if vni := p.field(t, "outer socket listening", "vni", nil); vni != "7" {
		t.Fatalf("VNI %s, want the file's 7", vni)
	}
}

// TestCLIBadArguments: each mistake names the argument and its value,
// shows the usage line, and exits 2 before anything starts.
func TestCLIBadArguments(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(cfg, []byte("vni = 1\nbogus = 2\n"), 0o600)
	negative := filepath.Join(t.TempDir(), "negative.toml")
	os.WriteFile(negative, []byte("peer-timeout = \"-5s\"\n"), 0o600)
	openKey := filepath.Join(t.TempDir(), "open.key")
	os.WriteFile(openKey, []byte("00112233445566778899aabbccddeeff\n"), 0o600)
	os.Chmod(openKey, 0o644) // past the umask
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"symmetric", "16777216", "2001:db8:a::1", "64:ff9b::203.0.113.90", "2001:db8:b::1"}, "VNI 16777216 out of range 0..16777215"},
		{[]string{"symmetric", "forty-two", "2001:db8:a::1", "64:ff9b::203.0.113.90", "2001:db8:b::1"}, `VNI "forty-two"`},
		{[]string{"symmetric", "42", "192.0.2.1", "64:ff9b::203.0.113.90", "2001:db8:b::1"}, `LOCAL "192.0.2.1": must be an IPv6 address`},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/129"}, `REMOTE "fdd9::/129"`},
		{[]string{"client", "42", "fdd9::1", "bad host!", "2001:db8:a::1"}, `PATH "bad host!"`},
		{[]string{"client", "42", "fdd9::1", "example.com", "2001:db8:a::/64"}, "only a server accepts a prefix"},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--addr", "10.0.0.1/33"}, `--addr "10.0.0.1/33"`},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--route", "10.0.0.0/8@fd00::1"}, "10.0.0.0/8@fd00::1"},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--addr", "10.0.0.1/24", "--forward", "sctp/1=2:3"}, `protocol "sctp"`},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--payload", "ppp"}, `--payload "ppp"`},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--nat64-prefix", "64:ff9b::/95"}, `--nat64-prefix "64:ff9b::/95"`},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--keepalive", "soon"}, `"soon"`},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--addr", "10.0.0.1/24", "--socks", "127.0.0.1:99999"}, `port "99999": want 0..65535`},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--peer-timeout", "-1s"}, "--peer-timeout -1s: want at least 1s"},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--peer-timeout", "0"}, "--peer-timeout 0s"},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--config", negative}, "--peer-timeout -5s"},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--keepalive", "1ns"}, "--keepalive 1ns: want 0 (off) or at least 1s"},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--key", openKey}, "mode 0644, want no access for group and others (chmod 600 " + openKey + ")"},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--addr", "10.0.0.1/24", "--egress", "--egress-deny", "10.0.0.0/8:99999"}, `"10.0.0.0/8:99999"`},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--addr", "10.0.0.1/24", "--egress-allow", "10.0.0.0/8"}, "--egress, which is not on"},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--max-addrs-per-peer", "0"}, "--max-addrs-per-peer 0"},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--flood-rate", "-5"}, "--flood-rate -5"},
		{[]string{"server", "42", "2001:db8:a::1", "fdd9::/64", "--addr", "10.0.0.1/24", "--socks", "1080", "--socks-handshake-timeout", "10ms"}, "--socks-handshake-timeout 10ms"},
		{[]string{"server", "42", "2001:db8:a::1"}, "missing REMOTE"},
		{[]string{"symmetric", "42", "2001:db8:a::1", "64:ff9b::203.0.113.90", "2001:db8:b::1", "extra"}, `too many arguments: ["extra"]`},
		{[]string{"server", "--config", cfg}, `unknown setting "bogus"`},
		{[]string{"gateway", "--ipv4", "203.0.113.90"}, "--allow is required"},
		{[]string{"gateway", "setup", "--ipv4", "203.0.113.90"}, "--lan is required"},
		{[]string{"symmetric", "42", "2001:db8:a::1", "64:ff9b::203.0.113.90", "2001:db8:b::1", "--tap", "tap0", "--payload", "ip"}, `--tap "tap0" needs --payload ethernet`},
		{[]string{"symmetric", "42", "2001:db8:a::1", "64:ff9b::203.0.113.90", "2001:db8:b::1", "--tun", "tun0"}, `--tun "tun0" needs --payload ip`},
		{[]string{"symmetric", "42", "2001:db8:a::1", "64:ff9b::203.0.113.90", "2001:db8:b::1", "--tap", "t", "--tun", "u"}, "choose one"},
		{[]string{"gateway", "setup", "--lan", "eth1", "--ipv4", "2001:db8::1"}, `--ipv4 "2001:db8::1"`},
		{[]string{"gateway", "setup", "--lan", "eth1", "--ipv4", "203.0.113.90", "--apply", "--undo"}, "choose one"},
		{[]string{"gateway", "--ipv4", "2001:db8::1", "--allow", "::/0"}, `--ipv4 "2001:db8::1"`},
	} {
		cmd := exec.Command(bin, tc.args...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("%q: exit %v, want 2\n%s", tc.args, err, out)
			continue
		}
		if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "Usage: geneve64 ") {
			t.Errorf("%q: output lacks %q or the usage line:\n%s", tc.args, tc.want, out)
		}
	}
}

// TestCLIDemoOnce: the README's first command, in its --once form.
func TestCLIDemoOnce(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "demo", "--once", "--socks", "127.0.0.1:0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "200 OK") || !strings.Contains(string(out), "reached through GENEVE over NAT64") {
		t.Fatalf("demo --once: %v\n%s", err, out)
	}
}

// buildBench builds cmd/geneve64-bench once.
var buildBench = sync.OnceValues(func() (string, error) {
	bin, err := buildBinary()
	if err != nil {
		return "", err
	}
	bench := filepath.Join(filepath.Dir(bin), "geneve64-bench")
	if out, err := exec.Command("go", "build", "-o", bench, "../cmd/geneve64-bench").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bench, nil
})

// TestCLIBench: the benchmark command runs the product binary end to end
// and reports every figure the README's performance table has (a smoke
// test: figures are printed, never asserted on, since machines are noisy).
func TestCLIBench(t *testing.T) {
	if testing.Short() {
		t.Skip("bench takes a few seconds")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	bench, err := buildBench()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bench, "--geneve64", bin, "--quick", "--duration", "300ms", "--json").Output()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	var doc struct {
		Results []struct {
			Name    string
			Value   float64
			Comment string
			Ratio   float64 `json:"ratio_to_microsocks"`
			Cost    *struct {
				Syscalls float64 `json:"syscalls"`
				Switches float64 `json:"context_switches"`
				GoRuns   float64 `json:"goroutine_runs"`
			}
		}
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	names, ratios := map[string]float64{}, map[string]float64{}
	costs := map[string]struct{ syscalls, switches, goRuns float64 }{}
	for _, r := range doc.Results {
		names[r.Name], ratios[r.Name] = r.Value, r.Ratio
		if r.Cost != nil {
			costs[r.Name] = struct{ syscalls, switches, goRuns float64 }{r.Cost.Syscalls, r.Cost.Switches, r.Cost.GoRuns}
		}
		// A figure counts only the connections that worked; none may fail.
		if strings.Contains(r.Comment, "failed") && !strings.HasSuffix(r.Comment, " 0 failed") {
			t.Errorf("bench: %s: %s", r.Name, r.Comment)
		}
	}
	for _, want := range []string{"kernel loopback TCP, 1 stream", "SOCKS5 1-byte ping-pong p50",
		"SOCKS5, 1 stream(s) up, inner MTU 1394 (1500-byte outer path)", "forward, 1 stream down, inner MTU 9000",
		"SOCKS5 connections (CONNECT, first byte, close)", "RSS near end (SOCKS), idle",
		"plain relays, no tunnel: SOCKS5, 1 stream up", "plain relays, no tunnel: connections (CONNECT, first byte, close)"} {
		if v, ok := names[want]; !ok || v <= 0 {
			t.Errorf("bench reported %q = %v", want, v)
		}
	}
	// microsocks, the SOCKS5 server a user would run instead, is the
	// baseline of the latency and connection ratios; CI installs it.
	if _, err := exec.LookPath("microsocks"); err == nil || os.Getenv("CI") != "" {
		for _, want := range []string{"SOCKS5 1-byte ping-pong p50", "SOCKS5 1-byte ping-pong p99", "SOCKS5 connections (CONNECT, first byte, close)"} {
			if ratios[want] <= 0 {
				t.Errorf("bench gave %q no ratio to microsocks", want)
			}
		}
	}
	// What a round trip and a connection cost each process: CPU, context
	// switches, goroutines run (from the endpoints' scheduler metrics),
	// and system calls where perf counts them (CI installs it).
	_, perfErr := exec.LookPath("perf")
	for _, want := range []string{"per round trip, tunnel, near end (SOCKS5, netstack)", "per round trip, tunnel, far end (netstack, egress)",
		"per connection, tunnel, near end (SOCKS5, netstack)", "per MiB, 1 stream up, tunnel, far end (netstack, egress)"} {
		c, ok := costs[want]
		if !ok || names[want] <= 0 || c.switches <= 0 || c.goRuns <= 0 {
			t.Errorf("bench cost %q: %v µs CPU, %+v", want, names[want], c)
		}
		if (perfErr == nil || os.Getenv("CI") != "") && c.syscalls <= 0 {
			t.Errorf("bench cost %q: %v system calls (perf: %v)", want, c.syscalls, perfErr)
		}
	}
	// A binary that is not there is a usage error naming it.
	cmd := exec.Command(bench, "--geneve64", filepath.Join(t.TempDir(), "missing"))
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "missing") {
		t.Errorf("bench with a missing binary: %v\n%s", err, out)
	}
}

// TestCLIReadyFD: --ready-fd reports every listener's address once they
// all serve, and a descriptor that is not open is a usage error.
func TestCLIReadyFD(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	p := freeUDPPort(t)
	cmd := exec.Command(bin, "symmetric", "42", fmt.Sprintf("[::1]:%d", p), "[::1]:9", "::1", "--addr", "10.42.0.2/24",
		"--socks", "127.0.0.1:0", "--forward", "127.0.0.1:0=10.42.0.1:80", "--forward", "udp/127.0.0.1:0=10.42.0.1:53",
		"--metrics", "127.0.0.1:0", "--ready-fd", "3")
	cmd.ExtraFiles = []*os.File{pw}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	b, err := io.ReadAll(pr) // the binary closes its end after the one line
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Outer, SOCKS, Metrics string
		Forwards              []string
	}
	if err := json.Unmarshal(b, &r); err != nil || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("ready line %q: %v", b, err)
	}
	if r.Outer != fmt.Sprintf("[::1]:%d", p) || len(r.Forwards) != 2 {
		t.Fatalf("ready report %+v", r)
	}
	// Each reported listener serves by now.
	for _, a := range []string{r.SOCKS, r.Forwards[0], r.Metrics} {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err != nil {
			t.Errorf("reported %s: %v", a, err)
			continue
		}
		c.Close()
	}
	if resp, err := http.Get("http://" + r.Metrics + "/metrics"); err != nil || resp.StatusCode != 200 {
		t.Errorf("metrics at the reported address: %v %v", resp, err)
	}
	for _, fd := range []string{"7", "-1"} {
		out, err := exec.Command(bin, "symmetric", "42", "[::1]:6081", "[::1]:9", "::1", "--ready-fd", fd).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "--ready-fd "+fd) {
			t.Errorf("--ready-fd %s: %v\n%s", fd, err, out)
		}
	}
}

// TestCLIQuietUnderChurn: normal closes are not errors; hundreds of
// connections through SOCKS and egress leave the log at the default level
// as it was.
func TestCLIQuietUnderChurn(t *testing.T) {
	far := startFarHost(t)
	p1, p2 := freeUDPPort(t), freeUDPPort(t)
	srv := startBinary(t, "server", "42", fmt.Sprintf("[::1]:%d", p1), "::1", "--egress", "--egress-loopback", "--addr", "10.42.0.1/24")
	srv.field(t, "outer socket listening", "addr", nil)
	cli := startBinary(t, "client", "42", fmt.Sprintf("[::1]:%d", p2), fmt.Sprintf("[::1]:%d", p1), "::1",
		"--addr", "10.42.0.2/24", "--socks", "127.0.0.1:0")
	socksAddr := cli.field(t, "SOCKS5 listening", "addr", nil)
	srv.field(t, "peer heard", "path", nil)
	time.Sleep(200 * time.Millisecond)
	before := len(strings.Split(srv.log(), "\n")) + len(strings.Split(cli.log(), "\n"))
	d, err := proxy.SOCKS5("tcp", socksAddr, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		c, err := d.Dial("tcp", net.JoinHostPort("10.42.0.1", strconv.Itoa(far.port)))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
		if b, err := io.ReadAll(c); err != nil || !strings.HasSuffix(string(b), "hello from the far side\n") {
			t.Fatalf("connection %d: %q %v", i, b, err)
		}
		c.Close()
	}
	time.Sleep(300 * time.Millisecond)
	after := len(strings.Split(srv.log(), "\n")) + len(strings.Split(cli.log(), "\n"))
	if after != before {
		t.Fatalf("300 connections wrote %d log lines:\n%s\n%s", after-before, srv.log(), cli.log())
	}
}

// TestCLISOCKSSilentClients: twice --max-conns connections that never
// send a byte do not lock curl out of the binary's SOCKS5 proxy, and are
// closed once --socks-handshake-timeout passes.
func TestCLISOCKSSilentClients(t *testing.T) {
	curl := needCurl(t)
	far := startFarHost(t)
	// One endpoint: its SOCKS5 reaches its own netstack's reverse forward,
	// which leads to the far host.
	p := startBinary(t, "symmetric", "42", fmt.Sprintf("[::1]:%d", freeUDPPort(t)), fmt.Sprintf("[::1]:%d", freeUDPPort(t)), "::2",
		"--addr", "10.42.0.2/24", "--socks", "127.0.0.1:0", "--max-conns", "5", "--socks-handshake-timeout", "1s",
		"--reverse", fmt.Sprintf("10.42.0.2:7000=127.0.0.1:%d", far.port))
	socksAddr := p.field(t, "SOCKS5 listening", "addr", nil)
	var silent []net.Conn
	for range 10 {
		c, err := net.Dial("tcp", socksAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	out, err := exec.Command(curl, "-sS", "--max-time", "10", "--socks5", socksAddr, "http://10.42.0.2:7000/").CombinedOutput()
	if err != nil || string(out) != "hello from the far side\n" {
		t.Fatalf("curl beside 10 silent connections: %q %v", out, err)
	}
	for i, c := range silent {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
			t.Fatalf("silent connection %d not closed by the proxy: %v", i, err)
		}
	}
}

// needCurl returns curl's path: a real SOCKS5 client. Without it the test
// is skipped, but in CI, which installs it, it fails.
func needCurl(t *testing.T) string {
	t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl is required in CI")
		}
		t.Skip("curl not installed")
	}
	return curl
}
