package nat64

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// TestRFC6052Examples is the table of RFC 6052 section 2.4: 192.0.2.33
// embedded under each prefix length.
func TestRFC6052Examples(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.33")
	for _, tc := range []struct{ prefix, want string }{
		{"2001:db8::/32", "2001:db8:c000:221::"},
		{"2001:db8:100::/40", "2001:db8:1c0:2:21::"},
		{"2001:db8:122::/48", "2001:db8:122:c000:2:2100::"},
		{"2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"},
		{"2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"},
		{"2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"},
		{"64:ff9b::/96", "64:ff9b::192.0.2.33"},
	} {
		p := netip.MustParsePrefix(tc.prefix)
		got, err := Embed(p, v4)
		if err != nil {
			t.Fatalf("%s: %v", tc.prefix, err)
		}
		if want := netip.MustParseAddr(tc.want); got != want {
			t.Errorf("Embed(%s) = %s, want %s", tc.prefix, got, want)
		}
		back, err := Extract(p, got)
		if err != nil || back != v4 {
			t.Errorf("Extract(%s, %s) = %s, %v", tc.prefix, got, back, err)
		}
	}
}

// TestEmbedRoundTrip: every length, random prefixes and addresses; the
// u-octet is always zero and extraction inverts embedding.
func TestEmbedRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		var a [16]byte
		for j := range a {
			a[j] = byte(r.Uint32())
		}
		a[uOctet] = 0
		bits := []int{32, 40, 48, 56, 64, 96}[r.IntN(6)]
		p := netip.PrefixFrom(netip.AddrFrom16(a), bits).Masked()
		v4 := netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
		v6, err := Embed(p, v4)
		if err != nil {
			t.Fatal(err)
		}
		if b := v6.As16(); b[uOctet] != 0 || !p.Contains(v6) {
			t.Fatalf("Embed(%s, %s) = %s", p, v4, v6)
		}
		if back, err := Extract(p, v6); err != nil || back != v4 {
			t.Fatalf("Extract(%s, %s) = %s, %v; want %s", p, v6, back, err, v4)
		}
	}
}

func TestMappingErrors(t *testing.T) {
	v4 := netip.MustParseAddr("203.0.113.90")
	for _, tc := range []struct {
		name, prefix, msg string
	}{
		{"length", "2001:db8::/33", "length 33"},
		{"ipv4 prefix", "10.0.0.0/8", "not an IPv6 prefix"},
		{"u-octet in /96", "2001:db8:0:0:ff00::/96", "u-octet (bits 64..71) 0xff"},
	} {
		_, err := Embed(netip.MustParsePrefix(tc.prefix), v4)
		if !errors.Is(err, ErrPrefix) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v naming %q", tc.name, err, ErrPrefix, tc.msg)
		}
	}
	if _, err := Embed(WellKnownPrefix, netip.MustParseAddr("2001:db8::1")); !errors.Is(err, ErrNotIPv4) {
		t.Errorf("embedding IPv6: %v", err)
	}
	if a, err := Embed(WellKnownPrefix, netip.MustParseAddr("::ffff:203.0.113.90")); err != nil || a.String() != "64:ff9b::cb00:715a" {
		t.Errorf("embedding a v4-mapped address: %s %v", a, err)
	}
	if _, err := Extract(WellKnownPrefix, netip.MustParseAddr("2001:db8::1")); !errors.Is(err, ErrNotEmbedded) {
		t.Errorf("outside the prefix: %v", err)
	}
	p64 := netip.MustParsePrefix("2001:db8:122:344::/64")
	_, err := Extract(p64, netip.MustParseAddr("2001:db8:122:344:1c0:2:2100:0"))
	if !errors.Is(err, ErrNotEmbedded) || !strings.Contains(err.Error(), "u-octet (bits 64..71) 0x01") {
		t.Errorf("non-zero u-octet: %v", err)
	}
	// The suffix is ignored on extraction.
	if got, err := Extract(p64, netip.MustParseAddr("2001:db8:122:344:c0:2:2100:ff")); err != nil || got.String() != "192.0.2.33" {
		t.Errorf("suffix: %s %v", got, err)
	}
}

func FuzzExtract(f *testing.F) {
	f.Add([]byte(netip.MustParseAddr("64:ff9b::1.2.3.4").AsSlice()), 96)
	f.Add(make([]byte, 16), 32)
	f.Fuzz(func(t *testing.T, b []byte, bits int) {
		if len(b) != 16 {
			return
		}
		a := netip.AddrFrom16([16]byte(b))
		p := netip.PrefixFrom(a, bits).Masked()
		v4, err := Extract(p, a)
		if err != nil {
			return
		}
		if back, err := Embed(p, v4); err != nil || mustExtract(t, p, back) != v4 {
			t.Fatalf("%s in %s: %s, re-embedded %s, %v", a, p, v4, back, err)
		}
	})
}

func mustExtract(t *testing.T, p netip.Prefix, a netip.Addr) netip.Addr {
	v4, err := Extract(p, a)
	if err != nil {
		t.Fatal(err)
	}
	return v4
}
