//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lab builds network namespaces, veths and processes for one test and
// tears them all down when it ends, whatever happened.
type lab struct {
	t      testing.TB
	prefix string
	dir    string
	index  int
	spaces []string
	mu     sync.Mutex
	procs  []*labProc
}

type labProc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
}

// kernelTools are what the kernel tests need; CI installs them.
var kernelTools = []string{"ip", "nft", "tayga", "ethtool", "conntrack", "tshark", "tcpdump", "curl", "ping", "setpriv",
	"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"}

// newLab checks for root and the tools: outside CI a missing one skips
// the test, in CI it fails it.
func newLab(t testing.TB) *lab {
	t.Helper()
	watch(t)
	need := func(what string) {
		if os.Getenv("CI") != "" {
			t.Fatalf("kernel tests need %s (CI installs it; see .ci/run)", what)
		}
		t.Skipf("kernel tests need %s", what)
	}
	if os.Geteuid() != 0 {
		need("root")
	}
	for _, tool := range kernelTools {
		if _, err := exec.LookPath(tool); err != nil {
			need(tool)
		}
	}
	l := &lab{t: t, prefix: fmt.Sprintf("g64-%d-", os.Getpid()%100000), dir: t.TempDir()}
	// Distinct interface indexes: fresh veths otherwise share one, and the
	// first neighbour solicitation on them is lost.
	l.index = 1000 + int(time.Now().UnixNano()%500)*40
	if err := os.Chmod(l.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.teardown)
	return l
}

func (l *lab) teardown() {
	l.mu.Lock()
	procs := l.procs
	l.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		p.cmd.Process.Signal(unix.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
		p.log.Close()
		if l.t.Failed() {
			b, _ := os.ReadFile(p.log.Name())
			l.t.Logf("--- %s:\n%s", p.name, tail(string(b), 40))
		}
	}
	for _, ns := range l.spaces {
		// Whatever still runs inside (TAYGA daemonizes) goes too.
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				exec.Command("kill", "-9", pid).Run()
			}
		}
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ns creates a namespace and returns its full name.
func (l *lab) ns(name string) string {
	full := l.prefix + name
	l.must("ip", "netns", "add", full)
	l.spaces = append(l.spaces, full)
	l.must("ip", "-n", full, "link", "set", "lo", "up")
	return full
}

// must runs a command and fails the test if it fails or takes over a
// minute: a wedged tool fails its test by name instead of hanging the run.
func (l *lab) must(args ...string) string {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// in runs a command inside namespace ns.
func (l *lab) in(ns string, args ...string) string {
	l.t.Helper()
	return l.must(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// link joins ns1/dev1 and ns2/dev2 with a veth pair, up, with TX checksum
// offload off so userspace peers and captures see final checksums.
func (l *lab) link(ns1, dev1, ns2, dev2 string) {
	l.t.Helper()
	a, b := l.index, l.index+1
	l.index += 2
	ta, tb := fmt.Sprintf("g64v%d", a), fmt.Sprintf("g64v%d", b)
	l.must("ip", "link", "add", ta, "index", fmt.Sprint(a), "type", "veth", "peer", "name", tb, "index", fmt.Sprint(b))
	l.must("ip", "link", "set", ta, "netns", ns1, "name", dev1)
	l.must("ip", "link", "set", tb, "netns", ns2, "name", dev2)
	for _, x := range [][2]string{{ns1, dev1}, {ns2, dev2}} {
		l.must("ip", "-n", x[0], "link", "set", x[1], "up")
		l.in(x[0], "ethtool", "-K", x[1], "tx", "off")
	}
}

// start runs a long-lived process inside ns, logging to a file.
func (l *lab) start(ns, name string, env []string, args ...string) *labProc {
	l.t.Helper()
	f, err := os.Create(filepath.Join(l.dir, name+".log"))
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	p := &labProc{name: name, cmd: cmd, log: f}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p
}

// logText returns what a process has written so far.
func (p *labProc) logText() string {
	b, _ := os.ReadFile(p.log.Name())
	return string(b)
}

// waitLog waits until the process's log contains s.
func (l *lab) waitLog(p *labProc, s string) {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logText(), s) {
		if time.Now().After(deadline) {
			l.t.Fatalf("%s never logged %q:\n%s", p.name, s, tail(p.logText(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// binary returns the built geneve64, readable and runnable by anyone (the
// gateway runs as nobody in one test).
func (l *lab) binary() string {
	l.t.Helper()
	bin, err := buildBinary()
	if err != nil {
		l.t.Fatal(err)
	}
	os.Chmod(filepath.Dir(bin), 0o755)
	return bin
}

// helper starts this test binary as an HTTP server inside ns.
func (l *lab) helper(ns, name, addr string) {
	l.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	p := l.start(ns, name, []string{"GENEVE64_HELPER=http " + addr}, exe, "-test.run=^TestHelperProcess$")
	l.waitLog(p, "listening")
}

// inNetns runs f on an OS thread inside namespace ns: sockets f opens stay
// there, so an in-process endpoint can have its outer socket in a lab
// namespace while the test drives it directly.
func inNetns(ns string, f func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer unix.Close(orig)
	target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := f()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return err // the thread stays locked and dies with the goroutine: it is tainted
	}
	runtime.UnlockOSThread()
	return ferr
}
