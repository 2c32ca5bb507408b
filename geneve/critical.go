package geneve

import "fmt"

// OptionKey names an option by class and type, with the type's critical bit
// cleared: whether an option is understood does not depend on that bit.
type OptionKey struct {
	Class uint16
	Type  uint8
}

// KeyOf returns the key of o.
func KeyOf(o Option) OptionKey { return OptionKey{o.Class, o.Type &^ CriticalBit} }

// KnownOptions is the set of options a receiver understands. The zero value
// knows none. It is a small slice searched linearly: receivers know a handful
// of options, and a scan is cheaper than a map for that.
type KnownOptions []OptionKey

// Knows reports whether o is in the set. Types are compared without their
// critical bit on either side, so an entry may be written as the type
// appears on the wire (0x81) or without the bit (0x01).
func (k KnownOptions) Knows(o Option) bool {
	key := KeyOf(o)
	for _, x := range k {
		if x.Class == key.Class && x.Type&^CriticalBit == key.Type {
			return true
		}
	}
	return false
}

// CheckCritical applies RFC 8926 section 3.5: it returns an error wrapping
// [ErrUnknownCritical] for the first critical option not in known. It looks at
// every option whatever the C bit says, so a sender that forgot the C bit
// cannot slip a critical option past. h must have come from [Parse] (or be
// otherwise well-formed); a malformed area is reported as such.
func (h *Header) CheckCritical(known KnownOptions) error {
	it := h.Options()
	for it.Next() {
		o := it.Option()
		if o.Critical() && !known.Knows(o) {
			return fmt.Errorf("%w: class %#04x type %#02x", ErrUnknownCritical, o.Class, o.Type)
		}
	}
	return it.Err()
}
