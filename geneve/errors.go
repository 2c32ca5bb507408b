package geneve

import "errors"

// Errors returned by [Parse], [Header.Append] and friends. Each is wrapped
// with the field and value that caused it, so callers match with errors.Is
// and people read the wrapped message.
var (
	// ErrTruncated: the packet is shorter than the 8-byte fixed header.
	ErrTruncated = errors.New("geneve: packet shorter than the 8-byte header")
	// ErrVersion: the version field is not 0, the only version RFC 8926 defines.
	ErrVersion = errors.New("geneve: unsupported version (must be 0)")
	// ErrOptionsPastPacket: the header's option length runs past the end of the packet.
	ErrOptionsPastPacket = errors.New("geneve: options length runs past the end of the packet")
	// ErrOptionPastArea: an option's length runs past the end of the options area.
	ErrOptionPastArea = errors.New("geneve: option runs past the end of the options area")
	// ErrVNI: a VNI does not fit in 24 bits.
	ErrVNI = errors.New("geneve: VNI out of range 0..16777215")
	// ErrOptionsLength: an options area is longer than 252 bytes or not a multiple of 4.
	ErrOptionsLength = errors.New("geneve: options length must be a multiple of 4 and at most 252 bytes")
	// ErrOptionDataLength: an option's data is longer than 124 bytes or not a multiple of 4.
	ErrOptionDataLength = errors.New("geneve: option data length must be a multiple of 4 and at most 124 bytes")
	// ErrUnknownCritical: an option with the critical bit set that the receiver
	// does not understand; RFC 8926 section 3.5 says to drop the packet.
	ErrUnknownCritical = errors.New("geneve: unknown critical option")
)
