package udpbatch

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// putCmsg16 and putCmsg32 write one control message of level and type,
// carrying v as a 16- or 32-bit integer in host order, at the start of oob
// (at least unix.CmsgSpace of that size), and return it.
func putCmsg16(oob []byte, level, typ int32, v uint16) []byte {
	oob = cmsgHeader(oob, level, typ, 2)
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], v)
	return oob
}

// putCmsg32: see putCmsg16.
func putCmsg32(oob []byte, level, typ int32, v uint32) []byte {
	oob = cmsgHeader(oob, level, typ, 4)
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], v)
	return oob
}

func cmsgHeader(oob []byte, level, typ int32, n int) []byte {
	oob = oob[:unix.CmsgSpace(n)]
	clear(oob)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(n))
	return oob
}
