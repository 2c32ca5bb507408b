package nat64

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ProtocolOAM is the protocol type of geneve64's OAM packets: the IEEE 802
// Local Experimental Ethertype, which no Ethernet receiver delivers as a frame.
const ProtocolOAM uint16 = 0x88B5

// OAM message kinds.
const (
	oamEchoRequest = 1
	oamEchoReply   = 2
	oamLen         = 20
)

var oamMagic = [3]byte{'g', '6', '4'}

// ErrOAM: an OAM payload this endpoint does not understand.
var ErrOAM = errors.New("nat64: unknown OAM message")

type oamMessage struct {
	kind  byte
	seq   uint64
	stamp int64 // the requester's clock, echoed unchanged
}

func appendOAM(dst []byte, m oamMessage) []byte {
	dst = append(dst, oamMagic[0], oamMagic[1], oamMagic[2], m.kind)
	dst = binary.BigEndian.AppendUint64(dst, m.seq)
	return binary.BigEndian.AppendUint64(dst, uint64(m.stamp))
}

func parseOAM(b []byte) (oamMessage, error) {
	if len(b) < oamLen || [3]byte(b[:3]) != oamMagic {
		return oamMessage{}, fmt.Errorf("%w: %d bytes", ErrOAM, len(b))
	}
	m := oamMessage{kind: b[3], seq: binary.BigEndian.Uint64(b[4:12]), stamp: int64(binary.BigEndian.Uint64(b[12:20]))}
	if m.kind != oamEchoRequest && m.kind != oamEchoReply {
		return oamMessage{}, fmt.Errorf("%w: kind %d", ErrOAM, m.kind)
	}
	return m, nil
}
