package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCLIStartupFailures runs the binary into each way an endpoint can fail
// to start once its arguments are valid: a port someone else holds, a PATH
// that does not resolve, no NAT64 prefix to reach an IPv4 PATH. Each must
// exit 1 with one line naming the cause and the value, promptly, and never
// with a panic or a goroutine dump.
func TestCLIStartupFailures(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	takenUDP := udp.LocalAddr().(*net.UDPAddr).Port
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	takenTCP := tcp.Addr().String()
	free := func() string { return "[::1]:" + strconv.Itoa(freeUDPPort(t)) }

	type tc struct {
		name string
		cmd  []string // run as is: a wrapper such as unshare may come first
		want []string
	}
	cases := []tc{
		{"outer port taken", []string{bin, "symmetric", "42", "[::1]:" + strconv.Itoa(takenUDP), free(), "::2", "--addr", "10.0.0.1/24"},
			[]string{"listen udp", strconv.Itoa(takenUDP), "address already in use"}},
		{"SOCKS port taken", []string{bin, "symmetric", "42", free(), free(), "::2", "--addr", "10.0.0.1/24", "--socks", takenTCP},
			[]string{takenTCP, "address already in use"}},
		{"forward port taken", []string{bin, "symmetric", "42", free(), free(), "::2", "--addr", "10.0.0.1/24", "--forward", takenTCP + "=10.0.0.2:80"},
			[]string{takenTCP, "address already in use"}},
		{"metrics port taken", []string{bin, "symmetric", "42", free(), free(), "::2", "--metrics", takenTCP},
			[]string{"metrics", takenTCP, "address already in use"}},
		{"demo's SOCKS port taken", []string{bin, "demo", "--once", "--socks", takenTCP},
			[]string{takenTCP, "address already in use", "try --socks"}},
		{"PATH does not resolve", []string{bin, "client", "42", "fdd9::1", "nonexistent.invalid", "::1"},
			[]string{"PATH", "nonexistent.invalid"}},
	}
	// No NAT64 prefix to be had: an IPv4 PATH from a host with no IPv4
	// route and no DNS, which a network namespace of its own gives.
	if runtime.GOOS == "linux" && os.Geteuid() == 0 {
		if _, err := exec.LookPath("unshare"); err == nil {
			cases = append(cases, tc{"no NAT64 prefix", []string{"unshare", "--net", bin, "client", "42", "fdd9::1", "192.0.2.1", "::1"},
				[]string{"PATH 192.0.2.1", "NAT64", "--nat64-prefix"}})
		} else if os.Getenv("CI") != "" {
			t.Error("unshare (util-linux) is required in CI")
		}
	} else if os.Getenv("CI") != "" {
		t.Error("CI runs as root on Linux; the no-prefix case needs a network namespace")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			out, err := exec.CommandContext(ctx, c.cmd[0], c.cmd[1:]...).CombinedOutput()
			took := time.Since(start)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit %v after %v, want 1:\n%s", err, took, out)
			}
			text := string(out)
			if strings.Contains(text, "panic") || strings.Contains(text, "goroutine ") {
				t.Fatalf("a panic or a goroutine dump:\n%s", text)
			}
			lines := strings.Split(strings.TrimSpace(text), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "geneve64: ") {
				t.Fatalf("the last line is not the error:\n%s", text)
			}
			for _, w := range c.want {
				if !strings.Contains(last, w) {
					t.Errorf("error line lacks %q: %s", w, last)
				}
			}
			t.Logf("exit 1 after %v: %s", took.Round(time.Millisecond), last)
		})
	}
}
