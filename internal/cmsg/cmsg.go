//go:build linux

// Package cmsg builds the socket control messages that the outer socket
// (UDP_SEGMENT) and the gateway (IP_TTL) attach to a datagram they send.
// It is its own package because both need it and the gateway must not
// reach into the endpoint's socket code for it.
package cmsg

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Space is the room one control message with n bytes of data takes.
func Space(n int) int { return unix.CmsgSpace(n) }

// Put16 and Put32 write one control message of level and type, carrying
// v as a 16- or 32-bit integer in host order, at the start of oob (at
// least Space of that size), and return it.
func Put16(oob []byte, level, typ int32, v uint16) []byte {
	oob = header(oob, level, typ, 2)
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], v)
	return oob
}

// Put32: see Put16.
func Put32(oob []byte, level, typ int32, v uint32) []byte {
	oob = header(oob, level, typ, 4)
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], v)
	return oob
}

func header(oob []byte, level, typ int32, n int) []byte {
	oob = oob[:unix.CmsgSpace(n)]
	clear(oob)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(n))
	return oob
}
