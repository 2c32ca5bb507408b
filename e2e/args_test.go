package e2e

import (
	"net/netip"
	"strings"
	"testing"

	"geneve64/nat64"
)

// The tests' own reading of the positional forms ("2001:db8:a::1",
// "[2001:db8:a::1]:7000", "fdd9::/64", a hostname): the command's parsers
// are the command's.

func localOf(t testing.TB, s string) netip.AddrPort {
	t.Helper()
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 0)
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatalf("LOCAL %q: %v", s, err)
	}
	return ap
}

func remoteOf(t *testing.T, s string) netip.Prefix {
	t.Helper()
	if !strings.Contains(s, "/") {
		a := netip.MustParseAddr(s)
		return netip.PrefixFrom(a, a.BitLen())
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatalf("REMOTE %q: %v", s, err)
	}
	return p
}

func targetOf(s string) nat64.Target {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return nat64.Target{Addr: ap.Addr(), Port: ap.Port()}
	}
	return nat64.NewTarget(s, 6081)
}
