//go:build linux

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"geneve64/geneve"
	"geneve64/nat64"
)

// The kernel topology: two IPv6-only sites, each behind a NAT64 (TAYGA with
// nftables masquerade), joined by an IPv4 "internet". The NAT64 prefix is a
// network-specific one: TAYGA refuses documentation ranges inside
// 64:ff9b::/96. A site's NAT64 may also run geneve64 gateway beside TAYGA.
const labPrefix = "2001:db8:64::/96"

type natLab struct {
	*lab
	siteA, natA, inet, natB, siteB string
	bin                            string
	opts                           natLabOptions
}

// newNATLab builds the topology; gwA and gwB add the extension gateway to
// site A's and site B's NAT64.
func newNATLab(t *testing.T, gwA, gwB bool) *natLab {
	return newNATLabWith(t, natLabOptions{gwA: gwA, gwB: gwB})
}

// natLabOptions vary the topology the way real sites differ.
type natLabOptions struct {
	gwA, gwB bool
	// rewriteB: site B sends to the well-known prefix, which its NAT64
	// host maps onto TAYGA's with an nft dnat in prerouting, as sites do
	// to run TAYGA with documentation or private ranges.
	rewriteB bool
	// firewallB: site B's NAT64 host has a default-drop firewall of its own.
	firewallB bool
}

// prefixB is the NAT64 prefix site B's hosts send to.
func (l *natLab) prefixB() string {
	if l.opts.rewriteB {
		return nat64.WellKnownPrefix.String()
	}
	return labPrefix
}

func newNATLabWith(t testing.TB, o natLabOptions) *natLab {
	l := &natLab{lab: newLab(t), opts: o}
	openTUNDevice(t)
	l.bin = l.binary()
	l.siteA, l.natA, l.inet, l.natB, l.siteB = l.ns("siteA"), l.ns("natA"), l.ns("inet"), l.ns("natB"), l.ns("siteB")
	l.link(l.siteA, "eth0", l.natA, "lan")
	l.link(l.natA, "wan", l.inet, "toA")
	l.link(l.inet, "toB", l.natB, "wan")
	l.link(l.natB, "lan", l.siteB, "eth0")
	for _, x := range []struct{ site, nat, v6, v4, gw4 string }{
		{l.siteA, l.natA, "2001:db8:a", "198.51.100.7/24", "198.51.100.1"},
		{l.siteB, l.natB, "2001:db8:b", "203.0.113.90/24", "203.0.113.1"},
	} {
		l.must("ip", "-n", x.site, "addr", "add", x.v6+"::1/64", "dev", "eth0", "nodad")
		l.must("ip", "-n", x.site, "-6", "route", "add", "default", "via", x.v6+"::fe")
		l.must("ip", "-n", x.nat, "addr", "add", x.v6+"::fe/64", "dev", "lan", "nodad")
		l.must("ip", "-n", x.nat, "addr", "add", x.v4, "dev", "wan")
		l.must("ip", "-n", x.nat, "route", "add", "default", "via", x.gw4)
		l.startTAYGA(x.nat)
	}
	l.must("ip", "-n", l.inet, "addr", "add", "198.51.100.1/24", "dev", "toA")
	l.must("ip", "-n", l.inet, "addr", "add", "203.0.113.1/24", "dev", "toB")
	for _, ns := range []string{l.natA, l.inet, l.natB} {
		l.in(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	}
	if o.rewriteB {
		l.in(l.natB, "nft", "add table ip6 rewrite; add chain ip6 rewrite pre { type nat hook prerouting priority dstnat; }; "+
			"add rule ip6 rewrite pre iifname lan ip6 daddr "+nat64.WellKnownPrefix.String()+" dnat prefix to "+labPrefix)
	}
	if o.firewallB {
		// What a NAT64 host's own firewall typically lets through: its
		// loopback, ICMP, replies, and the site's traffic into TAYGA
		// and out of it. Nothing for the gateway: setup adds that.
		l.in(l.natB, "nft", "add table inet filter; "+
			"add chain inet filter input { type filter hook input priority filter; policy drop; }; "+
			"add rule inet filter input iif lo accept; "+
			"add rule inet filter input ct state established,related accept; "+
			"add rule inet filter input meta l4proto { icmp, ipv6-icmp } accept; "+
			"add chain inet filter forward { type filter hook forward priority filter; policy drop; }; "+
			"add rule inet filter forward ct state established,related accept; "+
			"add rule inet filter forward meta l4proto ipv6-icmp accept; "+
			"add rule inet filter forward iifname { lan, nat64 } accept")
	}
	if o.gwA {
		l.startGateway(l.natA, "198.51.100.7", labPrefix, "2001:db8:a::/64")
	}
	if o.gwB {
		l.startGateway(l.natB, "203.0.113.90", l.prefixB(), "2001:db8:b::/64")
	}
	// The NAT64 path works before any tunnel runs.
	l.in(l.siteA, "ping", "-c1", "-W2", "2001:db8:64::203.0.113.1")
	l.in(l.siteB, "ping", "-c1", "-W2", l.embed(l.prefixB(), "198.51.100.1"))
	return l
}

// embed is RFC 6052's address of v4 under a /96 prefix, as text.
func (l *natLab) embed(prefix, v4 string) string {
	a, err := nat64.Embed(netip.MustParsePrefix(prefix), netip.MustParseAddr(v4))
	if err != nil {
		l.t.Fatal(err)
	}
	return a.String()
}

// startTAYGA runs a plain stateful NAT64 in ns: TAYGA maps IPv6 hosts into
// a private pool, and nftables masquerades the pool behind the WAN address
// with random ports, so a flushed conntrack gives a new external port.
func (l *natLab) startTAYGA(ns string) {
	dir := filepath.Join(l.dir, "tayga-"+ns)
	os.MkdirAll(dir, 0o755)
	conf := filepath.Join(dir, "tayga.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("tun-device nat64\nipv4-addr 192.168.255.1\nprefix %s\ndynamic-pool 192.168.255.0/24\ndata-dir %s\n", labPrefix, dir)), 0o644)
	l.in(ns, "tayga", "-c", conf, "--mktun")
	l.must("ip", "-n", ns, "link", "set", "nat64", "up")
	l.must("ip", "-n", ns, "route", "add", "192.168.255.0/24", "dev", "nat64")
	l.must("ip", "-n", ns, "-6", "route", "add", labPrefix, "dev", "nat64")
	// -d keeps TAYGA in the foreground, logging to stderr (it has no syslog here).
	l.start(ns, "tayga-"+ns, nil, "tayga", "-d", "-c", conf)
	l.in(ns, "nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority 100; }; "+
		"add rule ip nat post oifname wan ip saddr 192.168.255.0/24 masquerade random")
}

// startGateway sets up ns for geneve64 gateway and runs it there, with
// exactly the two commands of the README's "Running a gateway" (the
// values for this host substituted): the setup as root, then the gateway
// as nobody on the TUN the setup made for that user. Each rerun of setup
// must change nothing, so it runs twice.
func (l *natLab) startGateway(ns, self4, prefix, allow string) {
	setup, run := readmeGatewayCommands(l.t)
	setup = substitute(l.t, setup, map[string]string{"--lan": "lan", "--ipv4": self4, "--prefix": prefix, "--user": "65534"})
	run = substitute(l.t, run, map[string]string{"--ipv4": self4, "--prefix": prefix, "--allow": allow, "--metrics": "127.0.0.1:9101"})
	for range 2 {
		l.in(ns, append([]string{l.bin}, setup...)...)
	}
	p := l.start(ns, "gateway-"+ns, nil, append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", l.bin}, run...)...)
	l.waitLog(p, "gateway listening")
}

// readmeGatewayCommands returns the README's gateway set-up and run
// commands, as arguments after "geneve64".
func readmeGatewayCommands(t testing.TB) (setup, run []string) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 3 && f[0] == "sudo" && f[1] == "geneve64" && f[2] == "gateway" && f[3] == "setup":
			setup = f[2:]
		case len(f) > 4 && f[0] == "sudo" && f[1] == "-u" && f[3] == "geneve64" && f[4] == "gateway":
			run = f[4:]
		}
	}
	if setup == nil || run == nil {
		t.Fatal("README.md lacks the gateway's setup or run command")
	}
	return setup, run
}

// substitute replaces the values of the flags named in values; each must
// be in args, so the README cannot drift from what the test checks.
func substitute(t testing.TB, args []string, values map[string]string) []string {
	out := slices.Clone(args)
	for flag, v := range values {
		i := slices.Index(out, flag)
		if i < 0 || i+1 >= len(out) {
			t.Fatalf("README command %q lacks %s", args, flag)
		}
		out[i+1] = v
	}
	return out
}

// endpoint runs a geneve64 endpoint inside ns.
func (l *natLab) endpoint(ns, name string, args ...string) *labProc {
	prefix := labPrefix
	if ns == l.siteB {
		prefix = l.prefixB()
	}
	if !slices.Contains(args, "--keepalive") {
		args = append(args, "--keepalive", "2s")
	}
	p := l.start(ns, name, nil, append([]string{l.bin}, append(args, "--nat64-prefix", prefix)...)...)
	l.waitLog(p, "outer socket listening")
	return p
}

// curl fetches url in ns through the SOCKS proxy at 127.0.0.1:1080 there.
func (l *natLab) curl(ns, url string, extra ...string) (string, error) {
	args := append([]string{"netns", "exec", ns, "curl", "-sS", "--max-time", "30", "--socks5-hostname", "127.0.0.1:1080"}, extra...)
	out, err := exec.Command("ip", append(args, url)...).CombinedOutput()
	return string(out), err
}

func (l *natLab) eventuallyCurl(ns, url, want string) {
	l.t.Helper()
	var out string
	var err error
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if out, err = l.curl(ns, url); err == nil && out == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	l.t.Fatalf("curl %s in %s: %q, %v", url, ns, out, err)
}

// TestKernelClientServer: the original README's client/server tunnel on
// real kernels. The client in site A sits behind a plain NAT64; the server
// in site B behind TAYGA and geneve64 gateway. curl in site A reaches an
// HTTP server on site B's host through SOCKS5, the tunnel and egress; a
// transfer survives a NAT rebinding on site A's NAT64; tshark's own GENEVE
// dissector agrees with what we put on the wire.
func TestKernelClientServer(t *testing.T) {
	l := newNATLab(t, false, true)
	l.helper(l.siteB, "http-siteB", "127.0.0.1:8080")
	srv := l.endpoint(l.siteB, "server", "server", "42", "2001:db8:b::1", "fdd9:f2f4:ed01::/64", "--egress", "--egress-loopback", "--addr", "10.42.0.1/24")
	l.endpoint(l.siteA, "client", "client", "42", "fdd9:f2f4:ed01::1", "203.0.113.90", "2001:db8:b::1",
		"--addr", "10.42.0.2/24", "--route", "0.0.0.0/0@10.42.0.1", "--dns", "10.42.0.1", "--socks", "127.0.0.1:1080")

	// Capture the tunnel on site B's WAN while curl runs.
	capture := filepath.Join(l.dir, "wan.pcap")
	tsh := l.start(l.natB, "tshark", nil, "tshark", "-i", "wan", "-f", "udp port 6081", "-w", capture)
	// "Capturing on" comes before the capture is live; "Capture
	// started" after (a fast curl once fell between the two, and the
	// capture held nothing).
	l.waitLog(tsh, "Capture started")
	l.eventuallyCurl(l.siteA, "http://localhost:8080/", "hello from the far side\n")
	l.eventuallyCurl(l.siteA, "http://localhost:8080/", "hello from the far side\n")
	l.waitLog(srv, "peer heard")
	time.Sleep(300 * time.Millisecond)
	tsh.cmd.Process.Signal(os.Interrupt)
	tsh.cmd.Wait()
	checkDissection(t, capture)

	// A 32 MiB download, slowed to last seconds, with site A's NAT64
	// forgetting every mapping in the middle.
	const n = 32 << 20
	file := filepath.Join(l.dir, "download")
	done := make(chan error, 1)
	go func() {
		_, err := l.curl(l.siteA, fmt.Sprintf("http://localhost:8080/download?n=%d&seed=5", n), "--limit-rate", "12M", "-o", file)
		done <- err
	}()
	time.Sleep(time.Second)
	l.in(l.natA, "conntrack", "-F")
	if err := <-done; err != nil {
		t.Fatalf("download across the rebinding: %v", err)
	}
	b, err := os.ReadFile(file)
	if err != nil || int64(len(b)) != n {
		t.Fatalf("downloaded %d bytes, %v", len(b), err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != streamHash(5, n) {
		t.Fatal("download corrupted")
	}
	l.waitLog(srv, "peer path moved")

	// The gateway counted what it relayed each way.
	m := l.in(l.natB, "curl", "-sS", "http://127.0.0.1:9101/metrics")
	for _, dir := range []string{"to-ipv4", "to-ipv6"} {
		if !strings.Contains(m, `geneve64_gateway_relayed_total{direction="`+dir+`"} `) ||
			strings.Contains(m, `geneve64_gateway_relayed_total{direction="`+dir+`"} 0`+"\n") {
			t.Fatalf("gateway metrics show nothing relayed %s:\n%s", dir, m)
		}
	}
	if !strings.Contains(m, `geneve64_gateway_drops_total{reason="not-allowed"} 0`) {
		t.Fatalf("gateway metrics:\n%s", m)
	}
}

// checkDissection reads a capture with tshark's GENEVE dissector and
// checks every tunnel packet: VNI, protocol type, the NAT64 option's
// class, type and length, and a valid outer UDP checksum.
func checkDissection(t *testing.T, capture string) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", capture, "-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "separator=|",
		"-e", "udp.srcport", "-e", "udp.dstport", "-e", "geneve.vni", "-e", "geneve.proto_type", "-e", "geneve.flags.oam",
		"-e", "geneve.option.class", "-e", "geneve.option.type", "-e", "geneve.option.length", "-e", "udp.checksum.status").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	data, oam := 0, 0
	for _, line := range lines {
		f := strings.Split(line, "|")
		if len(f) != 9 {
			t.Fatalf("tshark line %q", line)
		}
		first := func(s string) string { return strings.Split(s, ",")[0] }
		if first(f[2]) != "0x00002a" || first(f[5]) != "0x0162" || first(f[6]) != "0x01" || first(f[7]) != "36" || first(f[8]) != "1" {
			t.Fatalf("tshark dissected %q: want VNI 42, option 0x0162/0x01 length 36, good checksum", line)
		}
		if first(f[0]) != "6081" && first(f[1]) != "6081" {
			t.Fatalf("no port 6081 in %q", line)
		}
		switch {
		case first(f[4]) == "1" || first(f[4]) == "True":
			oam++
			if first(f[3]) != "0x88b5" {
				t.Fatalf("OAM packet with protocol %s", f[3])
			}
		default:
			data++
			if first(f[3]) != "0x6558" {
				t.Fatalf("data packet with protocol %s", f[3])
			}
		}
	}
	if data == 0 {
		t.Fatalf("no data packets among %d captured", len(lines))
	}
	t.Logf("tshark: %d data and %d OAM packets, all dissected as expected", data, oam)
}

// tunnelAcross runs the original README's pair of endpoints in mode across
// the lab, A with SOCKS, B with egress and an HTTP server on its host, and
// returns B once curl in site A reaches that server.
func tunnelAcross(l *natLab, mode string) *labProc {
	l.helper(l.siteB, "http-siteB", "127.0.0.1:8080")
	l.endpoint(l.siteA, "a", mode, "42", "2001:db8:a::1", "2001:db8:64::203.0.113.90", "2001:db8:b::1",
		"--addr", "10.42.0.2/24", "--route", "0.0.0.0/0@10.42.0.1", "--dns", "10.42.0.1", "--socks", "127.0.0.1:1080")
	b := l.endpoint(l.siteB, "b", mode, "42", "2001:db8:b::1", l.embed(l.prefixB(), "198.51.100.7"), "2001:db8:a::1",
		"--addr", "10.42.0.1/24", "--egress", "--egress-loopback")
	l.eventuallyCurl(l.siteA, "http://localhost:8080/", "hello from the far side\n")
	return b
}

// TestKernelSymmetric: the original README's symmetric tunnel, both sites'
// NAT64s with the gateway.
func TestKernelSymmetric(t *testing.T) {
	l := newNATLab(t, true, true)
	b := tunnelAcross(l, "symmetric")
	// B hears A from A's gateway's port 6081: the extension on both sides.
	l.waitLog(b, `from=[2001:db8:64::c633:6407]:6081`)
}

// TestKernelAuto: auto mode on both ends, only site B's NAT64 with the
// gateway: B learns A's real path from A's packets.
func TestKernelAuto(t *testing.T) {
	l := newNATLab(t, false, true)
	l.waitLog(tunnelAcross(l, "auto"), "peer path moved")
}

// openTUNDevice makes /dev/net/tun open to all, as most distributions ship
// it, for the test's duration: the unprivileged gateway needs that.
func openTUNDevice(t testing.TB) {
	st, err := os.Stat("/dev/net/tun")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() == 0o666 {
		return
	}
	if err := os.Chmod("/dev/net/tun", 0o666); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod("/dev/net/tun", st.Mode().Perm()) })
}

// TestKernelGatewayPrivileges: without root, CAP_NET_ADMIN or a TUN made
// for it, the gateway says what it needs and exits 1.
func TestKernelGatewayPrivileges(t *testing.T) {
	l := newLab(t)
	openTUNDevice(t)
	bin := l.binary()
	ns := l.ns("bare")
	l.must("ip", "-n", ns, "addr", "add", "192.0.2.10/24", "dev", "lo")
	out, err := exec.Command("ip", "netns", "exec", ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		bin, "gateway", "--ipv4", "192.0.2.10", "--allow", "2001:db8:b::/64", "--tun", "gwx").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1:\n%s", err, out)
	}
	for _, want := range []string{"CAP_NET_ADMIN", "ip tuntap add dev gwx mode tun user"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("message lacks %q:\n%s", want, out)
		}
	}
}

// TestKernelGatewayRefusesItself: an allowed site host sends GENEVE from
// port 6081 to the NAT64 prefix with the gateway's own loopback embedded
// (64:ff9b::127.0.0.1 port 5514, where a syslog-like canary listens on the
// gateway's host). It used to be delivered there, from the gateway's own
// address; now it is refused and counted, and an ordinary destination
// still goes.
func TestKernelGatewayRefusesItself(t *testing.T) {
	l := newNATLab(t, false, true)
	canary := l.start(l.natB, "canary", []string{"GENEVE64_HELPER=udp-sink 127.0.0.1:5514"}, helperExe(t), "-test.run=^TestHelperProcess$")
	l.waitLog(canary, "listening")
	opt, err := nat64.AppendOption(nil, nat64.Endpoints{Src: ip("2001:db8:b::1"), Dst: ip("2001:db8:a::1")})
	if err != nil {
		t.Fatal(err)
	}
	pkt, _ := (&geneve.Header{Protocol: geneve.ProtocolEthernet, VNI: 42, OptionBytes: opt}).Append(nil)
	pkt = append(pkt, "<13>forged syslog line"...)
	send := func(to string) {
		err := inNetns(l.siteB, func() error {
			c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.ParseIP("2001:db8:b::1"), Port: 6081})
			if err != nil {
				return err
			}
			defer c.Close()
			for range 5 {
				if _, err := c.WriteToUDPAddrPort(pkt, netip.MustParseAddrPort(to)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	send("[2001:db8:64::127.0.0.1]:5514")
	send("[2001:db8:64::7f00:35]:53") // 127.0.0.53, a local resolver
	send("[2001:db8:64::198.51.100.7]:6081")
	deadline := time.Now().Add(10 * time.Second)
	var m string
	for time.Now().Before(deadline) {
		m = l.in(l.natB, "curl", "-sS", "http://127.0.0.1:9101/metrics")
		if strings.Contains(m, `geneve64_gateway_refused_total{reason="loopback"} 10`) &&
			strings.Contains(m, `geneve64_gateway_relayed_total{direction="to-ipv4"} 5`) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(m, `geneve64_gateway_refused_total{reason="loopback"} 10`) ||
		!strings.Contains(m, `geneve64_gateway_relayed_total{direction="to-ipv4"} 5`) {
		t.Fatalf("gateway metrics:\n%s", m)
	}
	if strings.Contains(canary.logText(), "received") {
		t.Fatalf("the canary on the gateway's loopback received:\n%s", canary.logText())
	}
}
