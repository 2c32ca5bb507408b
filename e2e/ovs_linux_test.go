//go:build linux

package e2e

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"geneve64/internal/node"
	"geneve64/nat64"
	"geneve64/nat64/udpbatch"
	"geneve64/stack"
)

// ovsLab is Open vSwitch's userspace datapath in a namespace: br-phy holds
// the tunnel's IP addresses, br-int switches a host behind it onto GENEVE
// ports towards geneve64 (VNI 5001 over IPv4, 5002 over IPv6).
type ovsLab struct {
	*lab
	ovs, behind, g64 string
	vsctl            []string
}

func newOVSLab(t *testing.T) *ovsLab {
	l := &ovsLab{lab: newLab(t)}
	l.ovs, l.behind, l.g64 = l.ns("ovs"), l.ns("behind"), l.ns("g64")
	l.link(l.ovs, "phy", l.g64, "eth0")
	l.link(l.ovs, "vb", l.behind, "eth0")
	l.must("ip", "-n", l.g64, "addr", "add", "192.168.77.2/24", "dev", "eth0")
	l.must("ip", "-n", l.g64, "addr", "add", "fd77::2/64", "dev", "eth0", "nodad")
	l.must("ip", "-n", l.behind, "addr", "add", "10.50.0.2/24", "dev", "eth0")

	dir := filepath.Join(l.dir, "ovs")
	os.MkdirAll(dir, 0o755)
	db := filepath.Join(dir, "conf.db")
	l.must("ovsdb-tool", "create", db, "/usr/share/openvswitch/vswitch.ovsschema")
	sock := "unix:" + filepath.Join(dir, "db.sock")
	env := []string{"OVS_RUNDIR=" + dir, "OVS_DBDIR=" + dir, "OVS_LOGDIR=" + dir, "OVS_SYSCONFDIR=" + dir}
	l.start(l.ovs, "ovsdb-server", env, "ovsdb-server", "--remote=p"+sock, db)
	l.vsctl = []string{"ovs-vsctl", "--timeout=10", "--db=" + sock}
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command(l.vsctl[0], append(l.vsctl[1:], "--no-wait", "init")...).Run() != nil {
		if time.Now().After(deadline) {
			t.Fatal("ovsdb-server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.start(l.ovs, "ovs-vswitchd", env, "ovs-vswitchd", sock)
	l.vs("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev")
	l.vs("add-port", "br-phy", "phy")
	l.must("ip", "-n", l.ovs, "addr", "add", "192.168.77.1/24", "dev", "br-phy")
	l.must("ip", "-n", l.ovs, "addr", "add", "fd77::1/64", "dev", "br-phy", "nodad")
	l.must("ip", "-n", l.ovs, "link", "set", "br-phy", "up")
	l.vs("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
	l.vs("add-port", "br-int", "vb")
	l.vs("add-port", "br-int", "gnv4", "--", "set", "interface", "gnv4", "type=geneve", "options:remote_ip=192.168.77.2", "options:key=5001")
	l.vs("add-port", "br-int", "gnv6", "--", "set", "interface", "gnv6", "type=geneve", "options:remote_ip=fd77::2", "options:key=5002")
	return l
}

func (l *ovsLab) vs(args ...string) {
	l.t.Helper()
	l.must(append(l.vsctl, args...)...)
}

// endpoint runs geneve64 in this process with its outer socket in the g64
// namespace, facing OVS.
func (l *ovsLab) endpoint(vni uint32, local, remote string, noOption bool) *node.Node {
	l.t.Helper()
	la := localOf(l.t, local)
	var conn udpbatch.PacketConn
	if err := inNetns(l.g64, func() error {
		var err error
		conn, err = udpbatch.ListenUDP(netip.AddrPortFrom(la.Addr(), 6081))
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	n := startNode(l.t, node.Config{
		Endpoint: nat64.Config{Mode: nat64.Symmetric, VNI: vni, Local: la, NoOption: noOption,
			Path: nat64.Target{Addr: ip(remote), Port: 6081}, Remote: netip.PrefixFrom(ip(remote), ip(remote).BitLen()),
			Keepalive: -1, Listen: func(netip.AddrPort) (udpbatch.PacketConn, error) { return conn, nil }},
		Stack: stack.Config{Addrs: []netip.Prefix{pf("10.50.0.1/24")}},
	})
	return n
}

// TestOVSInterop: plain GENEVE (--no-option) between Open vSwitch's
// userspace datapath and geneve64, IPv4 and IPv6 outer: ping and TCP
// between a host behind OVS and geneve64's netstack, both directions.
func TestOVSInterop(t *testing.T) {
	l := newOVSLab(t)
	l.helper(l.behind, "http-behind", "10.50.0.2:8080")
	for _, tc := range []struct {
		name          string
		vni           uint32
		local, remote string
	}{
		{"ipv4 outer", 5001, "192.168.77.2", "192.168.77.1"},
		{"ipv6 outer", 5002, "fd77::2", "fd77::1"},
	} {
		func() {
			t.Logf("%s", tc.name)
			n := l.endpoint(tc.vni, tc.local, tc.remote, true)
			defer n.Close()
			l.in(l.behind, "ip", "neigh", "flush", "all")
			// The netstack serves HTTP; the host behind OVS fetches it.
			ln, err := n.Stack.Listen("tcp", ":80")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "netstack says hi\n") })}
			go srv.Serve(ln)
			defer srv.Close()

			// behind → netstack: ping and TCP.
			l.in(l.behind, "ping", "-c", "2", "-W", "3", "10.50.0.1")
			if out := l.in(l.behind, "curl", "-sS", "--max-time", "10", "http://10.50.0.1/"); out != "netstack says hi\n" {
				t.Fatalf("curl from behind OVS: %q", out)
			}
			// netstack → behind: ping and TCP.
			if _, err := n.Stack.Ping(withTimeout(t, 5*time.Second), ip("10.50.0.2")); err != nil {
				t.Fatalf("ping from the netstack: %v", err)
			}
			c, err := n.Stack.DialContext(withTimeout(t, 10*time.Second), "tcp", "10.50.0.2:8080")
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
			b, _ := io.ReadAll(c)
			c.Close()
			if !strings.HasSuffix(string(b), "hello from the far side\n") {
				t.Fatalf("GET from the netstack: %q", b)
			}
			if d := n.Endpoint.Stats().TotalDrops(); d != 0 {
				t.Fatalf("%s: %d drops talking to OVS", tc.name, d)
			}
		}()
	}
}

// TestOVSIgnoresOption: with the NAT64 option present, OVS ignores it (it
// is not critical) and delivers our frames: the ARP request from the
// netstack reaches the host behind OVS, whose answer comes back without the
// option and is dropped as such, by the protocol's rules.
func TestOVSIgnoresOption(t *testing.T) {
	l := newOVSLab(t)
	dump := l.start(l.behind, "tcpdump", nil, "tcpdump", "-l", "-n", "-i", "eth0", "arp")
	l.waitLog(dump, "listening on")
	n := l.endpoint(5002, "fd77::2", "fd77::1", false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	n.Stack.Ping(ctx, ip("10.50.0.2")) // answered by nobody: the ARP reply lacks the option
	cancel()
	l.waitLog(dump, "Request who-has 10.50.0.2 tell 10.50.0.1")
	eventually(t, "OVS's option-less replies counted", func() bool {
		return n.Endpoint.Stats().Drops(nat64.DropOption) > 0
	})
	if got := n.Endpoint.Stats().FramesIn.Load(); got != 0 {
		t.Fatalf("%d option-less frames delivered in option mode", got)
	}
}

// TestOVSTAP: the kernel interface on our side. geneve64 joins a TAP in
// its namespace to Open vSwitch's GENEVE port (plain GENEVE, IPv4 outer):
// the namespace's own kernel pings and fetches from the host behind OVS,
// a layer-2 segment across two implementations.
func TestOVSTAP(t *testing.T) {
	l := newOVSLab(t)
	l.helper(l.behind, "http-behind", "10.50.0.2:8080")
	l.in(l.g64, "ip", "tuntap", "add", "dev", "tap0", "mode", "tap")
	l.must("ip", "-n", l.g64, "addr", "add", "10.50.0.1/24", "dev", "tap0")
	l.must("ip", "-n", l.g64, "link", "set", "tap0", "up")
	p := l.start(l.g64, "geneve64-tap", nil, l.binary(), "symmetric", "5001", "192.168.77.2", "192.168.77.1", "192.168.77.1",
		"--no-option", "--tap", "tap0", "--keepalive", "0")
	l.waitLog(p, "inner network up")
	// Run as root, the endpoint set the TAP's MTU to the tunnel's: 1500
	// less IPv4, UDP, GENEVE and the inner Ethernet header.
	if out := l.in(l.g64, "ip", "link", "show", "tap0"); !strings.Contains(out, "mtu 1450 ") {
		t.Fatalf("TAP MTU not set to the inner MTU:\n%s", out)
	}
	l.eventually(l.g64, "ping", "-c1", "-W1", "10.50.0.2")
	if out := l.in(l.g64, "curl", "-sS", "--max-time", "10", "http://10.50.0.2:8080/"); !strings.HasSuffix(out, "hello from the far side\n") {
		t.Fatalf("curl from our kernel through the TAP: %q", out)
	}
	l.in(l.behind, "ping", "-c2", "-W2", "10.50.0.1")
}
