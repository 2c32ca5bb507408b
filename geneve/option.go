package geneve

import (
	"encoding/binary"
	"fmt"
)

// CriticalBit is the high bit of an option's type: a receiver that does not
// understand a critical option must drop the packet.
const CriticalBit = 0x80

// Option is one decoded option. Data aliases the packet.
type Option struct {
	// Class is the option class (namespace), e.g. 0x0162.
	Class uint16
	// Type is the option type within its class; its high bit is [CriticalBit].
	Type uint8
	// Data is the option's payload, a multiple of 4 bytes, at most [MaxOptionDataLen].
	Data []byte
}

// Critical reports whether the option's critical bit is set.
func (o Option) Critical() bool { return o.Type&CriticalBit != 0 }

// Len returns the encoded length of o: its 4-byte header plus data.
func (o Option) Len() int { return OptionHeaderLen + len(o.Data) }

// AppendOption encodes o onto dst. Data must be a multiple of 4 bytes and at
// most [MaxOptionDataLen]; the options area it is placed in is checked by
// [Header.Append].
func AppendOption(dst []byte, o Option) ([]byte, error) {
	n := len(o.Data)
	if n > MaxOptionDataLen || n%4 != 0 {
		return dst, fmt.Errorf("%w: class %#04x type %#02x data %d bytes",
			ErrOptionDataLength, o.Class, o.Type, n)
	}
	dst = append(dst, byte(o.Class>>8), byte(o.Class), o.Type, byte(n/4))
	return append(dst, o.Data...), nil
}

// OptionIter walks an encoded options area without allocating:
//
//	it := h.Options()
//	for it.Next() {
//		o := it.Option()
//		...
//	}
//	if err := it.Err(); err != nil { ... }
type OptionIter struct {
	area []byte
	off  int
	opt  Option
	err  error
}

// Options returns an iterator over h's options.
func (h *Header) Options() OptionIter { return OptionIter{area: h.OptionBytes} }

// IterOptions returns an iterator over an encoded options area.
func IterOptions(area []byte) OptionIter { return OptionIter{area: area} }

// Next advances to the next option and reports whether there is one. It
// returns false at the end of the area or at the first malformed option,
// after which Err says which.
func (it *OptionIter) Next() bool {
	if it.err != nil || it.off >= len(it.area) {
		return false
	}
	rest := it.area[it.off:]
	if len(rest) < OptionHeaderLen {
		it.err = fmt.Errorf("%w: option header at offset %d needs 4 bytes, %d left",
			ErrOptionPastArea, it.off, len(rest))
		return false
	}
	class := binary.BigEndian.Uint16(rest[0:2])
	typ := rest[2]
	dataLen := int(rest[3]&0x1f) * 4
	if OptionHeaderLen+dataLen > len(rest) {
		it.err = fmt.Errorf("%w: option at offset %d (class %#04x type %#02x) length %d (%d bytes), %d bytes left",
			ErrOptionPastArea, it.off, class, typ, dataLen/4, dataLen, len(rest)-OptionHeaderLen)
		return false
	}
	end := OptionHeaderLen + dataLen
	it.opt = Option{Class: class, Type: typ, Data: rest[OptionHeaderLen:end:end]}
	it.off += end
	return true
}

// Option returns the option Next stopped at.
func (it *OptionIter) Option() Option { return it.opt }

// Offset returns the offset, within the options area, just past the current option.
func (it *OptionIter) Offset() int { return it.off }

// Err returns the error that stopped the iteration, or nil at a clean end.
func (it *OptionIter) Err() error { return it.err }
