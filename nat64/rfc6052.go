package nat64

import (
	"errors"
	"fmt"
	"net/netip"
)

// WellKnownPrefix is 64:ff9b::/96, the Well-Known Prefix of RFC 6052.
// RFC 6052 reserves it for global IPv4 addresses; networks that translate
// private IPv4 space use a network-specific prefix instead.
var WellKnownPrefix = netip.MustParsePrefix("64:ff9b::/96")

// Errors of the address mapping, wrapped with the offending value.
var (
	// ErrPrefix: a prefix RFC 6052 does not allow (not IPv6, a length other
	// than 32, 40, 48, 56, 64 or 96, or a non-zero u-octet).
	ErrPrefix = errors.New("nat64: invalid RFC 6052 prefix")
	// ErrNotIPv4: an address to embed is not IPv4.
	ErrNotIPv4 = errors.New("nat64: not an IPv4 address")
	// ErrNotEmbedded: an IPv6 address is not an IPv4-embedded address of the prefix.
	ErrNotEmbedded = errors.New("nat64: not an IPv4-embedded address of the prefix")
)

// uOctet is the byte, bits 64 to 71, that RFC 6052 reserves and keeps zero
// for compatibility with RFC 4291 interface identifiers; the IPv4 address
// skips over it.
const uOctet = 8

// CheckPrefix reports whether p is usable as an RFC 6052 prefix: IPv6, of
// length 32, 40, 48, 56, 64 or 96, with bits 64 to 71 zero.
func CheckPrefix(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() {
		return fmt.Errorf("%w: %s is not an IPv6 prefix", ErrPrefix, p)
	}
	switch p.Bits() {
	case 32, 40, 48, 56, 64, 96:
	default:
		return fmt.Errorf("%w: %s has length %d, want 32, 40, 48, 56, 64 or 96", ErrPrefix, p, p.Bits())
	}
	if a := p.Masked().Addr().As16(); a[uOctet] != 0 {
		return fmt.Errorf("%w: %s has u-octet (bits 64..71) %#02x, must be 0", ErrPrefix, p, a[uOctet])
	}
	return nil
}

// Embed synthesizes the IPv4-embedded IPv6 address of v4 under prefix p
// (RFC 6052 section 2.2): the IPv4 bytes follow the prefix, skipping the
// u-octet, and the suffix is zero.
func Embed(p netip.Prefix, v4 netip.Addr) (netip.Addr, error) {
	if err := CheckPrefix(p); err != nil {
		return netip.Addr{}, err
	}
	v4 = v4.Unmap()
	if !v4.Is4() {
		return netip.Addr{}, fmt.Errorf("%w: %s", ErrNotIPv4, v4)
	}
	a := p.Masked().Addr().As16()
	b := v4.As4()
	pos := p.Bits() / 8
	for _, x := range b {
		if pos == uOctet {
			pos++
		}
		a[pos] = x
		pos++
	}
	return netip.AddrFrom16(a), nil
}

// Extract recovers the IPv4 address embedded in v6 under prefix p. v6 must
// lie inside p and have a zero u-octet; the suffix is ignored, as RFC 6052
// lets receivers do.
func Extract(p netip.Prefix, v6 netip.Addr) (netip.Addr, error) {
	if err := CheckPrefix(p); err != nil {
		return netip.Addr{}, err
	}
	if !v6.Is6() || v6.Is4In6() || !p.Contains(v6) {
		return netip.Addr{}, fmt.Errorf("%w: %s is not inside %s", ErrNotEmbedded, v6, p)
	}
	a := v6.As16()
	if a[uOctet] != 0 {
		return netip.Addr{}, fmt.Errorf("%w: %s has u-octet (bits 64..71) %#02x, must be 0", ErrNotEmbedded, v6, a[uOctet])
	}
	var b [4]byte
	pos := p.Bits() / 8
	for i := range b {
		if pos == uOctet {
			pos++
		}
		b[i] = a[pos]
		pos++
	}
	return netip.AddrFrom4(b), nil
}
