package gateway

import (
	"encoding/binary"
	"net"

	"golang.org/x/sys/unix"

	"geneve64/internal/cmsg"
)

// ttlOOBLen is room for one IP_TTL control message.
var ttlOOBLen = cmsg.Space(4)

// enableRecvTTL asks the kernel to report each received datagram's TTL,
// so the gateway can decrement it instead of starting the IPv6 hop limit
// afresh: a packet that loops dies.
func enableRecvTTL(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTTL, 1)
	}); err != nil {
		return err
	}
	return serr
}

// ttlOf returns the TTL a received datagram's control messages carry, or
// 0 when they carry none.
func ttlOf(oob []byte) uint8 {
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0
		}
		if h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TTL && len(data) >= 4 {
			return uint8(binary.NativeEndian.Uint32(data)) // an int, in host order
		}
		oob = rest
	}
	return 0
}

// ttlMessage fills b (ttlOOBLen bytes) with an IP_TTL control message
// that sends one datagram with ttl.
func ttlMessage(b []byte, ttl uint8) []byte {
	return cmsg.Put32(b, unix.IPPROTO_IP, unix.IP_TTL, uint32(ttl))
}
