package geneve

import (
	"encoding/binary"
	"fmt"
)

// Sizes and limits from RFC 8926.
const (
	// Port is the IANA-assigned UDP destination port for GENEVE.
	Port = 6081
	// HeaderLen is the length of the fixed header, without options.
	HeaderLen = 8
	// MaxOptionsLen is the largest options area the 6-bit length field can describe.
	MaxOptionsLen = 63 * 4
	// OptionHeaderLen is the length of an option's class, type and length fields.
	OptionHeaderLen = 4
	// MaxOptionDataLen is the largest option data the 5-bit length field can describe.
	MaxOptionDataLen = 31 * 4
	// MaxVNI is the largest 24-bit virtual network identifier.
	MaxVNI = 1<<24 - 1
)

// Protocol types carried in the header (Ethertypes).
const (
	// ProtocolEthernet is Transparent Ethernet Bridging: the payload is an Ethernet frame.
	ProtocolEthernet uint16 = 0x6558
	// ProtocolIPv4 means the payload is an IPv4 packet.
	ProtocolIPv4 uint16 = 0x0800
	// ProtocolIPv6 means the payload is an IPv6 packet.
	ProtocolIPv6 uint16 = 0x86DD
)

const (
	flagOAM      = 0x80
	flagCritical = 0x40
)

// Header is a decoded GENEVE header. After [Parse], Options aliases the
// packet's bytes; it holds the encoded options area, walked with
// [Header.Options]. Reserved bits are not kept: RFC 8926 says receivers
// ignore them and senders set them to zero.
type Header struct {
	// Version is the 2-bit version; 0 is the only one defined.
	Version uint8
	// OAM marks a control frame (the O bit): it must not be delivered as
	// ordinary payload.
	OAM bool
	// Critical is the C bit: one or more options have their critical bit set.
	// [Header.Append] sets it on the wire whenever an option is critical.
	Critical bool
	// Protocol is the Ethertype of the payload, e.g. [ProtocolEthernet].
	Protocol uint16
	// VNI is the 24-bit virtual network identifier.
	VNI uint32
	// OptionBytes is the encoded options area: whole options, a multiple of
	// 4 bytes, at most [MaxOptionsLen].
	OptionBytes []byte
}

// Len returns the encoded length of h: the fixed header plus its options.
func (h *Header) Len() int { return HeaderLen + len(h.OptionBytes) }

// Parse decodes the GENEVE header at the start of b and returns it with the
// payload that follows. It checks the version and walks every option, so an
// error names the first malformed field; after a nil error, iterating
// h.Options() cannot fail. Parse does not allocate unless it returns an
// error; h.OptionBytes and payload alias b.
func Parse(b []byte) (h Header, payload []byte, err error) {
	if len(b) < HeaderLen {
		return h, nil, fmt.Errorf("%w: length %d", ErrTruncated, len(b))
	}
	h.Version = b[0] >> 6
	if h.Version != 0 {
		return h, nil, fmt.Errorf("%w: version %d", ErrVersion, h.Version)
	}
	optLen := int(b[0]&0x3f) * 4
	if HeaderLen+optLen > len(b) {
		return h, nil, fmt.Errorf("%w: option length %d (%d bytes) in a packet of %d bytes",
			ErrOptionsPastPacket, optLen/4, optLen, len(b))
	}
	h.OAM = b[1]&flagOAM != 0
	h.Critical = b[1]&flagCritical != 0
	h.Protocol = binary.BigEndian.Uint16(b[2:4])
	h.VNI = uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6])
	h.OptionBytes = b[HeaderLen : HeaderLen+optLen : HeaderLen+optLen]
	if err := checkOptions(h.OptionBytes); err != nil {
		return h, nil, err
	}
	return h, b[HeaderLen+optLen:], nil
}

// checkOptions walks an options area and reports the first malformed option,
// so that a Header from Parse can be iterated without errors.
func checkOptions(area []byte) error {
	it := OptionIter{area: area}
	for it.Next() {
	}
	return it.Err()
}

// Append encodes h, fixed header then options, onto dst and returns the
// extended slice. It rejects a VNI over 24 bits, a version over 3 and a
// malformed options area. The C bit is set if h.Critical is set or any
// option is critical, as RFC 8926 requires.
func (h *Header) Append(dst []byte) ([]byte, error) {
	if h.VNI > MaxVNI {
		return dst, fmt.Errorf("%w: VNI %d", ErrVNI, h.VNI)
	}
	if h.Version > 3 {
		return dst, fmt.Errorf("%w: version %d does not fit in 2 bits", ErrVersion, h.Version)
	}
	n := len(h.OptionBytes)
	if n > MaxOptionsLen || n%4 != 0 {
		return dst, fmt.Errorf("%w: options %d bytes", ErrOptionsLength, n)
	}
	critical := h.Critical
	it := OptionIter{area: h.OptionBytes}
	for it.Next() {
		critical = critical || it.Option().Critical()
	}
	if err := it.Err(); err != nil {
		return dst, err
	}
	var flags byte
	if h.OAM {
		flags |= flagOAM
	}
	if critical {
		flags |= flagCritical
	}
	dst = append(dst,
		h.Version<<6|byte(n/4), flags,
		byte(h.Protocol>>8), byte(h.Protocol),
		byte(h.VNI>>16), byte(h.VNI>>8), byte(h.VNI), 0)
	return append(dst, h.OptionBytes...), nil
}
