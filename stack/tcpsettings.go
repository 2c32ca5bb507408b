package stack

import (
	"fmt"

	"gvisor.dev/gvisor/pkg/tcpip"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// The netstack's TCP settings, in one place. They start from well-known
// values for a userspace stack carrying bulk traffic: SACK on, receive
// buffer moderation on, receive buffers up to 8 MiB and send buffers up to
// 6 MiB, so one stream can fill a fast path with real round-trip times.
const (
	tcpReceiveBufferMax = 8 << 20
	tcpSendBufferMax    = 6 << 20
)

func applyTCPSettings(s *gvstack.Stack) error {
	sack := tcpip.TCPSACKEnabled(true)
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultReceiveBufferSize, Max: tcpReceiveBufferMax}
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultSendBufferSize, Max: tcpSendBufferMax}
	for name, opt := range map[string]tcpip.SettableTransportProtocolOption{
		"SACK": &sack, "receive buffer moderation": &moderate, "receive buffer": &rcv, "send buffer": &snd,
	} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			return fmt.Errorf("stack: setting TCP %s: %s", name, err)
		}
	}
	return nil
}
