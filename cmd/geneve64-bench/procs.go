package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/proxy"
)

// benchPair is the near (client, SOCKS) and far (server, egress) endpoints,
// each a child process running the binary under test, on loopback UDP.
type benchPair struct {
	near, far *exec.Cmd
	socks     string    // the near end's SOCKS5 address
	forward   string    // the near end's forward to the sink, if any
	target    string    // where SOCKS5 clients CONNECT to reach the sink
	metrics   [2]string // near's and far's metrics addresses, when they serve them
}

func freePort(network string) (int, error) {
	if strings.HasPrefix(network, "udp") {
		pc, err := net.ListenPacket(network, "[::1]:0")
		if err != nil {
			return 0, err
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port, nil
	}
	ln, err := net.Listen(network, "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startBenchPair starts both endpoints of the binary exe with the given
// inner MTU (0: from a 1500-byte path) and extra flags, and waits until
// SOCKS reaches the sink.
func startBenchPair(exe string, sinkPort, mtu int, extra ...string) (*benchPair, error) {
	p1, err := freePort("udp6")
	if err != nil {
		return nil, err
	}
	p2, err := freePort("udp6")
	if err != nil {
		return nil, err
	}
	// Metrics for the goroutine counts of the cost lines (costs.go).
	common := []string{"--log-format", "json", "--log-level", "info", "--metrics", "127.0.0.1:0"}
	if mtu > 0 {
		common = append(common, "--mtu", strconv.Itoa(mtu))
	}
	common = append(common, extra...)
	far := exec.Command(exe, append([]string{"server", "42", fmt.Sprintf("[::1]:%d", p1), "::1",
		"--egress", "--egress-loopback", "--addr", "10.42.0.1/24"}, common...)...)
	near := exec.Command(exe, append([]string{"client", "42", fmt.Sprintf("[::1]:%d", p2), fmt.Sprintf("[::1]:%d", p1), "::1",
		"--addr", "10.42.0.2/24", "--socks", "127.0.0.1:0", "--forward", fmt.Sprintf("127.0.0.1:0=10.42.0.1:%d", sinkPort)}, common...)...)
	bp := &benchPair{near: near, far: far, target: net.JoinHostPort("10.42.0.1", strconv.Itoa(sinkPort))}
	rf, err := startReady(far)
	if err != nil {
		return nil, err
	}
	bp.metrics[1] = rf.Metrics
	r, err := startReady(near)
	if err != nil {
		bp.stop()
		return nil, err
	}
	if r.SOCKS == "" || len(r.Forwards) != 1 {
		bp.stop()
		return nil, fmt.Errorf("bench: the near end reported %+v, want a SOCKS5 address and one forward", r)
	}
	bp.socks, bp.forward, bp.metrics[0] = r.SOCKS, r.Forwards[0], r.Metrics
	// Ready when a connection through the tunnel reaches the sink.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := bp.dialSOCKS(context.Background())
		if err == nil {
			c.Write([]byte{sinkHold})
			var b [1]byte
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err = c.Read(b[:])
			c.Close()
			if err == nil {
				return bp, nil
			}
		}
		if time.Now().After(deadline) {
			bp.stop()
			return nil, fmt.Errorf("bench: tunnel not up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readyReport is the line a child writes on its readiness descriptor
// (geneve64's --ready-fd, and the relay children's): its listeners'
// addresses.
type readyReport struct {
	Outer    string   `json:"outer"`
	SOCKS    string   `json:"socks"`
	Forwards []string `json:"forwards"`
	Metrics  string   `json:"metrics"`
}

// startReady starts cmd with a pipe as descriptor 3, passed as
// --ready-fd 3, and waits for the report it writes there once it serves.
// The child's log goes to a bounded buffer, shown if it fails to start.
func startReady(cmd *exec.Cmd) (readyReport, error) {
	var r readyReport
	pr, pw, err := os.Pipe()
	if err != nil {
		return r, err
	}
	defer pr.Close()
	cmd.ExtraFiles = []*os.File{pw}
	cmd.Args = append(cmd.Args, "--ready-fd", "3")
	logTail := &tail{max: 4096}
	cmd.Stderr = logTail
	dieWithParent(cmd)
	err = cmd.Start()
	pw.Close() // the child holds its own copy: end of file once it closes it or exits
	if err != nil {
		return r, err
	}
	got := make(chan error, 1)
	go func() { got <- json.NewDecoder(pr).Decode(&r) }()
	select {
	case err = <-got:
	case <-time.After(10 * time.Second):
		err = errors.New("no readiness report within 10 s")
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return r, fmt.Errorf("bench: %s did not start: %v\n%s", strings.Join(cmd.Args[1:3], " "), err, logTail)
	}
	return r, nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func (bp *benchPair) stop() {
	for _, c := range []*exec.Cmd{bp.near, bp.far} {
		if c != nil && c.Process != nil {
			c.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				c.Process.Kill()
			}
		}
	}
}

// dialSOCKS connects through the near end's SOCKS5 proxy to the sink: on
// the far host, reached through egress at the far end's inner address, or
// through the far relay of the plain-relay baseline.
func (bp *benchPair) dialSOCKS(ctx context.Context) (net.Conn, error) {
	// No keep-alive: as the endpoints, the clients and the sink skip
	// probes on loopback, which would only add system calls to the
	// connection figures.
	d, err := proxy.SOCKS5("tcp", bp.socks, nil, &net.Dialer{Timeout: 5 * time.Second, KeepAlive: -1})
	if err != nil {
		return nil, err
	}
	return d.(proxy.ContextDialer).DialContext(ctx, "tcp", bp.target)
}
