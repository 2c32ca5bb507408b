package main

import (
	"net/netip"
	"strings"
	"testing"
)

// TestGatewaySetupPrint: the printed set-up names this host's values in
// each command, in an order that works (the TUN before the route into it),
// and quotes what a shell would split.
func TestGatewaySetupPrint(t *testing.T) {
	s := gatewaySetup{lan: "eth1", tun: "gw0", user: "geneve64", ipv4: netip.MustParseAddr("203.0.113.90"),
		prefix: netip.MustParsePrefix("64:ff9b::/96"), port: 6081, table: 200, txqueuelen: 5000, rmemMax: 8 << 20}
	var b strings.Builder
	printSetup(&b, s)
	out := b.String()
	want := []string{
		"ip link set gw0 up txqueuelen 5000",
		"ip -6 rule add iif eth1 ipproto udp sport 6081 lookup 200",
		"ip -6 route replace 64:ff9b::/96 dev gw0 table 200",
		`iifname "eth1" ip6 daddr 64:ff9b::/96 udp sport 6081 notrack`,
		`iifname "gw0" notrack`,
		"ip daddr 203.0.113.90 udp dport 6081 notrack",
		"ip saddr 203.0.113.90 udp sport 6081 notrack",
		"sysctl -qw net.core.rmem_max=8388608 net.core.wmem_max=8388608",
	}
	last := -1
	for _, w := range want {
		i := strings.Index(out, w)
		if i < 0 {
			t.Fatalf("the set-up lacks %q:\n%s", w, out)
		}
		if i < last {
			t.Fatalf("%q comes too early:\n%s", w, out)
		}
		last = i
	}
	if got := shellLine([]string{"nft", "insert", "rule", "inet", "filter", "input", "iifname", `"my lan"`, "accept"}); got != `nft insert rule inet filter input iifname '"my lan"' accept` {
		t.Fatalf("shellLine: %s", got)
	}
}
