package main

import (
	"net"
	"net/netip"
	"testing"

	"geneve64/stack"
)

// TestDenyListener: the egress rules for the metrics listener cover every
// address it answers on: its own, or for a wildcard listener loopback and
// every address of the host, on its port alone.
func TestDenyListener(t *testing.T) {
	covers := func(rules []stack.EgressRule, dst string) bool {
		for _, r := range rules {
			if r.Matches(netip.MustParseAddrPort(dst)) {
				return true
			}
		}
		return false
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	rules := denyListener(ln)
	for _, dst := range []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), port)} {
		if !covers(rules, dst.String()) {
			t.Errorf("a loopback listener: %s not denied", dst)
		}
	}
	if covers(rules, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port+1).String()) {
		t.Error("another port denied")
	}

	wild, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer wild.Close()
	port = wild.Addr().(*net.TCPAddr).AddrPort().Port()
	rules = denyListener(wild)
	addrs, _ := net.InterfaceAddrs()
	want := []string{netip.AddrPortFrom(netip.IPv6Loopback(), port).String(), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String()}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			want = append(want, netip.AddrPortFrom(p.Addr().Unmap(), port).String())
		}
	}
	for _, dst := range want {
		if !covers(rules, dst) {
			t.Errorf("a wildcard listener: %s not denied", dst)
		}
	}
}
