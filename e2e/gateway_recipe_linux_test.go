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
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"geneve64/geneve"
	"geneve64/nat64"
)

// TestKernelGatewayRecipe: the README's gateway set-up, applied as the
// README gives it, on NAT64 hosts as sites run them: site B's maps the
// well-known prefix onto TAYGA's with a dnat in prerouting and has a
// default-drop firewall of its own. With gateways on both sides, a
// symmetric tunnel and then a client/server one each carry 5 MB intact,
// and both gateways' counters show that every GENEVE packet crossed a
// gateway on both sides, each way: none slipped through the plain NAT64s,
// and conntrack holds no GENEVE flow. A site host that forges another
// host's identity in the option is dropped by its gateway, and nothing of
// it leaves through the plain NAT64.
func TestKernelGatewayRecipe(t *testing.T) {
	l := newNATLabWith(t, natLabOptions{gwA: true, gwB: true, rewriteB: true, firewallB: true})
	l.helper(l.siteB, "http-siteB", "127.0.0.1:8080")
	base := l.gatewayTotals()

	// Symmetric, both sides with the gateway. No keepalives: once the
	// transfer is over nothing moves, and counters compare exactly.
	quiet := []string{"--keepalive", "0", "--metrics", "127.0.0.1:9200"}
	a := l.endpoint(l.siteA, "a", append([]string{"symmetric", "42", "2001:db8:a::1", "2001:db8:64::203.0.113.90", "2001:db8:b::1",
		"--addr", "10.42.0.2/24", "--socks", "127.0.0.1:1080"}, quiet...)...)
	b := l.endpoint(l.siteB, "b", append([]string{"symmetric", "42", "2001:db8:b::1", l.embed(l.prefixB(), "198.51.100.7"), "2001:db8:a::1",
		"--addr", "10.42.0.1/24", "--egress", "--egress-loopback"}, quiet...)...)
	l.download5MB("http://10.42.0.1:8080/download")
	l.waitLog(b, "from=["+l.embed(l.prefixB(), "198.51.100.7")+"]:6081") // B hears A's gateway
	l.checkEveryPacketCrossed(base, "symmetric", true)
	l.stopAll(a, b)

	// Client at site A behind its plain NAT64, server at site B behind
	// the gateway; the client names the server's public IPv4 address.
	base = l.gatewayTotals()
	srv := l.endpoint(l.siteB, "server", append([]string{"server", "42", "2001:db8:b::1", "fdd9:f2f4:ed01::/64",
		"--addr", "10.42.0.1/24", "--egress", "--egress-loopback"}, quiet...)...)
	cli := l.endpoint(l.siteA, "client", append([]string{"client", "42", "fdd9:f2f4:ed01::1", "203.0.113.90", "2001:db8:b::1",
		"--addr", "10.42.0.2/24", "--socks", "127.0.0.1:1080"}, quiet...)...)
	l.download5MB("http://10.42.0.1:8080/download")
	l.checkEveryPacketCrossed(base, "client/server", false)
	l.stopAll(cli, srv)

	// A forged identity from site B: dropped as spoofed by B's gateway,
	// never out through TAYGA. The genuine packet after it arrives.
	sink := l.start(l.inet, "udp-sink", []string{"GENEVE64_HELPER=udp-sink 198.51.100.1:6081"}, helperExe(t), "-test.run=^TestHelperProcess$")
	l.waitLog(sink, "listening")
	to := netip.AddrPortFrom(netip.MustParseAddr(l.embed(l.prefixB(), "198.51.100.1")), 6081)
	l.sendGENEVE(l.siteB, to, "2001:db8:b::99", 5, "forged")
	l.sendGENEVE(l.siteB, to, "2001:db8:b::1", 1, "genuine")
	l.waitLog(sink, "genuine")
	time.Sleep(200 * time.Millisecond) // anything of the forged ones that got out would be in by now
	if got := sink.logText(); strings.Contains(got, "forged") || strings.Count(got, "received") != 1 {
		t.Fatalf("the IPv4 internet received:\n%s", got)
	}
	if m := l.metrics(l.natB); !strings.Contains(m, `geneve64_gateway_drops_total{reason="spoofed"} 5`) {
		t.Fatalf("site B's gateway did not count 5 spoofed packets:\n%s", m)
	}

	// --undo takes back everything --apply added, and only that.
	setup, _ := readmeGatewayCommands(t)
	setup = substitute(t, setup, map[string]string{"--lan": "lan", "--ipv4": "203.0.113.90", "--prefix": l.prefixB(), "--user": "65534"})
	undo := append(slices.DeleteFunc(slices.Clone(setup), func(a string) bool { return a == "--apply" }), "--undo")
	l.in(l.natB, append([]string{l.bin}, undo...)...)
	ruleset, rules := l.in(l.natB, "nft", "list", "ruleset"), l.in(l.natB, "ip", "-6", "rule")
	if strings.Contains(ruleset, "geneve64") || strings.Contains(rules, "lookup 200") {
		t.Fatalf("after --undo:\n%s\n%s", ruleset, rules)
	}
	if exec.Command("ip", "-n", l.natB, "link", "show", "geneve64gw").Run() == nil {
		t.Fatal("after --undo the TUN is still there")
	}
	if !strings.Contains(ruleset, "table inet filter") || !strings.Contains(ruleset, "dnat prefix to") {
		t.Fatalf("--undo removed the host's own rules:\n%s", ruleset)
	}
}

// gatewayTotals reads what both gateways relayed: A to IPv4, A to IPv6,
// B to IPv4, B to IPv6.
func (l *natLab) gatewayTotals() [4]int64 {
	var t [4]int64
	for i, ns := range []string{l.natA, l.natB} {
		m := l.metrics(ns)
		for j, dir := range []string{"to-ipv4", "to-ipv6"} {
			t[2*i+j] = counter(l.t, m, `geneve64_gateway_relayed_total{direction="`+dir+`"}`)
		}
	}
	return t
}

// checkEveryPacketCrossed, once the tunnel is quiet: every packet site
// B's endpoint sent left through B's gateway and every one it received
// came through it; with both gateways, what A's sent to the internet B's
// received and the other way round. A packet that left through a plain
// NAT64 would reach the far side without the near gateway counting it.
// conntrack saw none of it.
func (l *natLab) checkEveryPacketCrossed(base [4]int64, what string, both bool) {
	l.t.Helper()
	time.Sleep(500 * time.Millisecond) // the last ACKs land
	ep := l.in(l.siteB, "curl", "-sS", "http://127.0.0.1:9200/metrics")
	epOut := counter(l.t, ep, `geneve64_frames_total{direction="out"}`) + counter(l.t, ep, `geneve64_oam_packets_total{direction="out"}`)
	epIn := counter(l.t, ep, `geneve64_frames_total{direction="in"}`) + counter(l.t, ep, `geneve64_oam_packets_total{direction="in"}`)
	for _, line := range strings.Split(ep, "\n") {
		// no-peer counts frames the stack sent before a path was proven:
		// never sent, so never on the wire.
		if strings.HasPrefix(line, "geneve64_drops_total{") && !strings.HasSuffix(line, " 0") && !strings.Contains(line, `"no-peer"`) {
			l.t.Fatalf("%s: site B's endpoint dropped packets: %s", what, line)
		}
	}
	now := l.gatewayTotals()
	aOut, aIn, bOut, bIn := now[0]-base[0], now[1]-base[1], now[2]-base[2], now[3]-base[3]
	l.t.Logf("%s: gateway A relayed %d out, %d in; gateway B %d out, %d in; B's endpoint sent %d, received %d",
		what, aOut, aIn, bOut, bIn, epOut, epIn)
	// 5 MB downstream is at least 3,700 packets of 1,394 bytes.
	if epOut < 3700 || bOut != epOut || bIn != epIn {
		l.t.Fatalf("%s: site B's endpoint sent %d and received %d packets; its gateway relayed %d out and %d in",
			what, epOut, epIn, bOut, bIn)
	}
	if both && (aOut != bIn || bOut != aIn) {
		l.t.Fatalf("%s: gateway A relayed %d out and %d in, gateway B %d out and %d in: want each side's out to be the other's in",
			what, aOut, aIn, bOut, bIn)
	}
	for _, ns := range []string{l.natA, l.natB} {
		out, _ := exec.Command("ip", "netns", "exec", ns, "conntrack", "-L", "-p", "udp").CombinedOutput()
		if strings.Contains(string(out), "port=6081") && (both || ns == l.natB) {
			l.t.Fatalf("%s: conntrack in %s tracks GENEVE:\n%s", what, ns, out)
		}
	}
}

// stopAll ends endpoints and waits until they have exited, so that no
// keepalive is in flight when counters are compared.
func (l *natLab) stopAll(ps ...*labProc) {
	for _, p := range ps {
		p.cmd.Process.Signal(unix.SIGTERM)
		p.cmd.Wait()
	}
	time.Sleep(300 * time.Millisecond)
}

// download5MB fetches 5 MB through site A's SOCKS5 proxy and checks it.
func (l *natLab) download5MB(url string) {
	l.t.Helper()
	const n = 5 << 20
	file := filepath.Join(l.dir, "download")
	os.Remove(file)
	var err error
	for try := 0; try < 50; try++ { // until the tunnel is up
		if _, err = l.curl(l.siteA, fmt.Sprintf("%s?n=%d&seed=9", url, n), "-o", file); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		l.t.Fatalf("download: %v", err)
	}
	b, err := os.ReadFile(file)
	if err != nil || len(b) != n {
		l.t.Fatalf("downloaded %d bytes, %v", len(b), err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != streamHash(9, n) {
		l.t.Fatal("download corrupted")
	}
}

// sendGENEVE sends count GENEVE packets from [2001:db8:b::1]:6081 in ns
// to dst, whose option names src as the sender, with body as payload.
func (l *natLab) sendGENEVE(ns string, dst netip.AddrPort, src string, count int, body string) {
	opt, err := nat64.AppendOption(nil, nat64.Endpoints{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr("2001:db8:a::1")})
	if err != nil {
		l.t.Fatal(err)
	}
	pkt, _ := (&geneve.Header{Protocol: geneve.ProtocolEthernet, VNI: 42, OptionBytes: opt}).Append(nil)
	pkt = append(pkt, body...)
	err = inNetns(ns, func() error {
		c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.ParseIP("2001:db8:b::1"), Port: 6081})
		if err != nil {
			return err
		}
		defer c.Close()
		for range count {
			if _, err := c.WriteToUDPAddrPort(pkt, dst); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
}

// metrics scrapes the gateway in ns.
func (l *natLab) metrics(ns string) string {
	return l.in(ns, "curl", "-sS", "http://127.0.0.1:9101/metrics")
}

// counter reads one series' value from a Prometheus text page.
func counter(t testing.TB, page, series string) int64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no %s in:\n%s", series, page)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return int64(v)
}
