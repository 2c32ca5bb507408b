// Package geneve is the RFC 8926 wire format: the 8-byte GENEVE header, its
// variable-length options, the OAM and critical bits, and the receiver's rule
// for unknown critical options.
//
// It is a leaf: it does no I/O and imports nothing of geneve64's own.
// Decoding works in place over the caller's bytes and never allocates on
// well-formed input; options are walked with an [OptionIter] rather than
// collected into a slice. Encoding appends into the caller's buffer.
//
// Layout of the fixed header (RFC 8926, section 3.4):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|        Virtual Network Identifier (VNI)       |    Reserved   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Variable-Length Options                    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
package geneve
