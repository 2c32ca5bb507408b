//go:build linux

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKernelSiteToSite joins two sites' networks through the tunnel, as
// the README's "Joining two sites" does: in each IPv6-only site a TAP made
// once by root for an ordinary user, the endpoint on it as that user with
// no capability, across both sites' NAT64s (TAYGA, with the gateway). The
// kernels on both sides ping each other over IPv4 and IPv6 (ARP and
// neighbour discovery cross the tunnel), and 50 MB go over TCP intact;
// then site B's endpoint also runs its netstack on the same segment, and
// both the netstack and site B's kernel answer; then the same with TUN
// devices and IP payloads.
func TestKernelSiteToSite(t *testing.T) {
	l := newNATLab(t, true, true)
	for _, s := range []struct{ ns, v4, v6 string }{{l.siteA, "10.50.0.1/24", "fd50::1/64"}, {l.siteB, "10.50.0.2/24", "fd50::2/64"}} {
		l.in(s.ns, "ip", "tuntap", "add", "dev", "tap0", "mode", "tap", "user", "65534")
		l.must("ip", "-n", s.ns, "addr", "add", s.v4, "dev", "tap0")
		l.must("ip", "-n", s.ns, "addr", "add", s.v6, "dev", "tap0", "nodad")
		l.must("ip", "-n", s.ns, "link", "set", "tap0", "up")
	}
	device := []string{"--tap", "tap0"}
	run := func(ns, name string, args ...string) *labProc {
		argv := append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", l.bin}, args...)
		argv = append(argv, device...)
		argv = append(argv, "--keepalive", "2s", "--nat64-prefix", labPrefix, "--metrics", "127.0.0.1:9200")
		return l.start(ns, name, nil, argv...)
	}
	a := []string{"symmetric", "42", "2001:db8:a::1", "2001:db8:64::203.0.113.90", "2001:db8:b::1"}
	b := []string{"symmetric", "42", "2001:db8:b::1", "2001:db8:64::198.51.100.7", "2001:db8:a::1"}

	// Unprivileged, the endpoint cannot lower the TAP's MTU (1500) to
	// the tunnel's (1394), and says what to run.
	out, err := exec.Command("ip", append([]string{"netns", "exec", l.siteA, "setpriv", "--reuid=65534", "--regid=65534",
		"--clear-groups", l.bin}, append(a, "--tap", "tap0", "--nat64-prefix", labPrefix)...)...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "ip link set tap0 mtu 1394") {
		t.Fatalf("with the TAP's MTU too large: %v\n%s", err, out)
	}
	for _, ns := range []string{l.siteA, l.siteB} {
		l.must("ip", "-n", ns, "link", "set", "tap0", "mtu", "1394")
	}
	pa := run(l.siteA, "a", a...)
	l.waitLog(pa, "inner network up")
	pb := run(l.siteB, "b", b...)
	l.waitLog(pb, "inner network up")

	l.eventually(l.siteA, "ping", "-c1", "-W1", "10.50.0.2")
	l.eventually(l.siteB, "ping", "-c1", "-W1", "fd50::1")
	l.in(l.siteA, "ping", "-c3", "-i0.2", "-W2", "fd50::2")
	l.in(l.siteB, "ping", "-c3", "-i0.2", "-W2", "10.50.0.1")
	if n := l.in(l.siteA, "ip", "neigh", "show", "dev", "tap0"); !strings.Contains(n, "10.50.0.2 lladdr") || !strings.Contains(n, "fd50::2 lladdr") {
		t.Fatalf("site A learned no neighbours across the tunnel:\n%s", n)
	}

	// 50 MB over TCP between the two kernels.
	l.helper(l.siteB, "http-siteB", "10.50.0.2:8080")
	took := l.siteDownload(50<<20, 11)
	t.Logf("50 MB between the sites' kernels through TAPs in %v: %.0f Mbit/s", took.Round(time.Millisecond), (50<<20)*8/took.Seconds()/1e6)
	if m := l.in(l.siteB, "curl", "-sS", "http://127.0.0.1:9200/metrics"); !strings.Contains(m, "geneve64_device_oversize_frames_total 0") {
		t.Fatalf("frames dropped as oversize:\n%s", m)
	}

	// Site B's endpoint again, now with its netstack on the segment too.
	pb.cmd.Process.Signal(os.Interrupt)
	pb.cmd.Wait()
	pbn := run(l.siteB, "b-netstack", append(b, "--addr", "10.50.0.3/24")...)
	l.waitLog(pbn, "inner network up")
	l.eventually(l.siteA, "ping", "-c1", "-W1", "10.50.0.3")  // the netstack
	l.in(l.siteA, "ping", "-c3", "-i0.2", "-W2", "10.50.0.2") // site B's kernel, still
	took = l.siteDownload(20<<20, 12)
	t.Logf("20 MB between the kernels with the netstack on the segment: %v", took.Round(time.Millisecond))

	// --tun with IP payloads: the same across TUN devices. Their MTU is
	// below the tunnel's, which an endpoint accepts with a warning.
	pa.cmd.Process.Signal(os.Interrupt)
	pbn.cmd.Process.Signal(os.Interrupt)
	pa.cmd.Wait()
	pbn.cmd.Wait()
	for _, s := range []struct{ ns, v4, v6 string }{{l.siteA, "10.60.0.1/24", "fd60::1/64"}, {l.siteB, "10.60.0.2/24", "fd60::2/64"}} {
		l.in(s.ns, "ip", "tuntap", "add", "dev", "tun0", "mode", "tun", "user", "65534")
		l.must("ip", "-n", s.ns, "link", "set", "tun0", "mtu", "1300", "up")
		l.must("ip", "-n", s.ns, "addr", "add", s.v4, "dev", "tun0")
		l.must("ip", "-n", s.ns, "addr", "add", s.v6, "dev", "tun0", "nodad")
	}
	device = []string{"--tun", "tun0", "--payload", "ip"}
	l.waitLog(run(l.siteA, "a-tun", a...), "inner network up")
	l.waitLog(run(l.siteB, "b-tun", b...), "inner network up")
	l.eventually(l.siteA, "ping", "-c1", "-W1", "10.60.0.2")
	l.in(l.siteB, "ping", "-c3", "-i0.2", "-W2", "fd60::1")
}

// siteDownload has site A's kernel fetch size bytes from site B's over
// the joined segment, checks them and returns how long it took.
func (l *natLab) siteDownload(size int64, seed uint64) time.Duration {
	l.t.Helper()
	file := filepath.Join(l.dir, "site-download")
	begin := time.Now()
	if out, err := exec.Command("ip", "netns", "exec", l.siteA, "curl", "-sS", "--max-time", "120", "-o", file,
		fmt.Sprintf("http://10.50.0.2:8080/download?n=%d&seed=%d", size, seed)).CombinedOutput(); err != nil {
		l.t.Fatalf("download: %v\n%s", err, out)
	}
	took := time.Since(begin)
	got, err := os.ReadFile(file)
	if err != nil || int64(len(got)) != size {
		l.t.Fatalf("downloaded %d bytes, %v", len(got), err)
	}
	if sum := sha256.Sum256(got); hex.EncodeToString(sum[:]) != streamHash(seed, size) {
		l.t.Fatal("download corrupted")
	}
	return took
}

// eventually runs a command in ns until it succeeds, for up to 15 s.
func (l *lab) eventually(ns string, args ...string) {
	l.t.Helper()
	var out []byte
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if out, err = exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput(); err == nil {
			return
		}
	}
	l.t.Fatalf("%s in %s: %v\n%s", strings.Join(args, " "), ns, err, out)
}
