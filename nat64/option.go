package nat64

import (
	"errors"
	"fmt"
	"net/netip"

	"geneve64/geneve"
)

// The NAT64 extension option. Its type number is the one value not read from
// the extension's published text (which could not be read in full): keep it
// in this one constant so it is easy to change.
const (
	// OptionClass is the option class the extension's author uses for his
	// NAT64 options.
	OptionClass uint16 = 0x0162
	// OptionType is the extension option's type; its critical bit is clear,
	// so GENEVE receivers that do not know it (Open vSwitch, say) ignore it.
	OptionType uint8 = 0x01
	// OptionDataLen is the option's data: source then destination identity.
	OptionDataLen = 32
	// OptionLen is the option on the wire, its 4-byte header included.
	OptionLen = geneve.OptionHeaderLen + OptionDataLen
)

// KnownOptions is what an endpoint of this package understands, for
// [geneve.Header.CheckCritical].
var KnownOptions = geneve.KnownOptions{{Class: OptionClass, Type: OptionType}}

// Errors of the extension option, wrapped with the offending value.
var (
	// ErrOptionLength: the option's data is not 32 bytes.
	ErrOptionLength = errors.New("nat64: extension option data must be 32 bytes")
	// ErrNoOption: the frame carries no extension option.
	ErrNoOption = errors.New("nat64: no extension option")
	// ErrDuplicateOption: the frame carries the option twice; which one counts
	// would be ambiguous, so neither does.
	ErrDuplicateOption = errors.New("nat64: extension option present more than once")
	// ErrIdentity: an endpoint identity is not an IPv6 address (an
	// IPv4-mapped one included).
	ErrIdentity = errors.New("nat64: endpoint identity must be an IPv6 address")
)

// Endpoints is the content of the extension option: the IPv6 identities of
// the tunnel endpoint that sent the frame and of the one it is meant for.
// A NAT64 gateway routes an incoming IPv4 frame to Dst.
type Endpoints struct {
	Src netip.Addr
	Dst netip.Addr
}

// Reverse returns the endpoints as the peer sees them.
func (e Endpoints) Reverse() Endpoints { return Endpoints{Src: e.Dst, Dst: e.Src} }

func checkIdentity(field string, a netip.Addr) error {
	if !a.Is6() || a.Is4In6() {
		return fmt.Errorf("%w: %s %s", ErrIdentity, field, a)
	}
	return nil
}

// AppendOption encodes the extension option for e onto dst: the option
// header (class, type, length 8 words) and 32 bytes of identities.
func AppendOption(dst []byte, e Endpoints) ([]byte, error) {
	if err := checkIdentity("source", e.Src); err != nil {
		return dst, err
	}
	if err := checkIdentity("destination", e.Dst); err != nil {
		return dst, err
	}
	src, d := e.Src.As16(), e.Dst.As16()
	dst = append(dst, byte(OptionClass>>8), byte(OptionClass&0xff), OptionType, OptionDataLen/4)
	dst = append(dst, src[:]...)
	return append(dst, d[:]...), nil
}

// ParseOption decodes the data of an extension option. Identities must be
// IPv6 and not IPv4-mapped.
func ParseOption(data []byte) (Endpoints, error) {
	if len(data) != OptionDataLen {
		return Endpoints{}, fmt.Errorf("%w: %d bytes", ErrOptionLength, len(data))
	}
	e := Endpoints{
		Src: netip.AddrFrom16([16]byte(data[:16])),
		Dst: netip.AddrFrom16([16]byte(data[16:32])),
	}
	// An IPv4-mapped identity would make a gateway route to an IPv4 host
	// while believing it IPv6: refuse it here as AppendOption does.
	if err := checkIdentity("source", e.Src); err != nil {
		return Endpoints{}, err
	}
	if err := checkIdentity("destination", e.Dst); err != nil {
		return Endpoints{}, err
	}
	return e, nil
}

// IsOption reports whether o is the extension option, whatever its
// critical bit says.
func IsOption(o geneve.Option) bool {
	return geneve.KeyOf(o) == geneve.OptionKey{Class: OptionClass, Type: OptionType}
}

// FindOption returns the endpoints named by the one extension option in h.
// It fails if there is none, more than one, or one of the wrong length.
// It does not allocate on success.
func FindOption(h *geneve.Header) (Endpoints, error) {
	var data []byte
	found := false
	it := h.Options()
	for it.Next() {
		o := it.Option()
		if !IsOption(o) {
			continue
		}
		if found {
			return Endpoints{}, fmt.Errorf("%w: second at offset %d", ErrDuplicateOption, it.Offset()-o.Len())
		}
		found, data = true, o.Data
	}
	if err := it.Err(); err != nil {
		return Endpoints{}, err
	}
	if !found {
		return Endpoints{}, ErrNoOption
	}
	return ParseOption(data)
}
