package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"geneve64/geneve"
)

// TestCLIMetricsPeersOnOneHost: two plain-GENEVE peers on one address
// (two ports of ::1) share an identity; /metrics must still answer 200
// with a series for each. It answered 500 for the whole endpoint, since
// the two series had the same labels.
func TestCLIMetricsPeersOnOneHost(t *testing.T) {
	port := freeUDPPort(t)
	srv := startBinary(t, "server", "42", fmt.Sprintf("[::1]:%d", port), "::1/128", "--no-option",
		"--addr", "10.42.0.1/24", "--metrics", "127.0.0.1:0")
	maddr := srv.field(t, "metrics listening", "addr", nil)
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.IPv6Loopback(), uint16(port)))
	var ports []string
	for i := range 2 {
		c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ports = append(ports, fmt.Sprint(c.LocalAddr().(*net.UDPAddr).Port))
		h := geneve.Header{Protocol: geneve.ProtocolEthernet, VNI: 42}
		pkt, _ := h.Append(nil)
		frame := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, byte(0x10 + i), 0x88, 0xb5}
		if _, err := c.WriteToUDP(append(pkt, append(frame, "hello"...)...), to); err != nil {
			t.Fatal(err)
		}
	}
	srv.field(t, "peer heard", "path", func(s string) bool { return strings.HasSuffix(s, ":"+ports[1]) })
	srv.field(t, "peer heard", "path", func(s string) bool { return strings.HasSuffix(s, ":"+ports[0]) })
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics answered %s:\n%s", resp.Status, body)
	}
	for _, p := range ports {
		want := fmt.Sprintf(`geneve64_peer_last_seen_seconds{identity="::1",peer="[::1]:%s"}`, p)
		if !strings.Contains(string(body), want) {
			t.Errorf("no series %s", want)
		}
	}
	if !strings.Contains(string(body), "geneve64_peers 2") {
		t.Errorf("geneve64_peers is not 2")
	}
}
