package stack

import (
	"encoding/binary"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Delayed acknowledgements. gVisor's TCP acknowledges every segment it
// receives at once; it has no delayed ACK. In request/response traffic the
// reply follows a moment later and would have carried the acknowledgement,
// so half the packets through the tunnel are pure ACKs, each a system call
// here and a wake-up at the far end. The link endpoint holds back a pure
// ACK while the flow's unacknowledged data is under two full segments
// (Linux's rule for delaying), for up to ackDelay, and drops it when
// anything else of the same flow is sent meanwhile, as that carries the
// same or a newer acknowledgement. Duplicate ACKs, ACKs with SACK blocks
// and window updates go at once, and so does every ACK of a flow that has
// sent its FIN: as in Linux, the side that closed first acknowledges the
// peer's FIN at once, so that the peer's LAST-ACK ends without a wait.

// ackDelay bounds how long an ACK is held: far below any retransmission
// timeout, well above the time a relay takes to answer.
const ackDelay = 500 * time.Microsecond

// maxAckFlows bounds the per-flow state; when it is full, state is dropped
// and ACKs go at once until flows are seen again.
const maxAckFlows = 4096

// flowKey names a TCP flow: addresses and ports as they appear in the
// packet (IPv4 addresses in the first 8 bytes).
type flowKey struct {
	addrs [32]byte
	ports uint32
}

type flowAcks struct {
	sent uint32 // the acknowledgement number the flow last sent
	held []byte // a held ACK frame (in buf), or nil
	ack  uint32 // the held frame's acknowledgement number
	fin  bool   // the flow has sent its FIN
	buf  []byte
	seen time.Time
}

type ackDelayer struct {
	link     Link
	ethernet bool
	small    uint32 // "acknowledges little": less than this many bytes

	mu     sync.Mutex
	flows  map[flowKey]*flowAcks
	heldBy []*flowAcks // flows that held an ACK since the last flush; may repeat
	free   []*flowAcks // forgotten flows' state, for reuse with its buffer
	held   int
	armed  bool
	closed bool
	timer  delayTimer
	out    [][]byte // frames the timer sends
}

// delayTimer is the one timer that sends held ACKs: a *time.Timer running
// flush, or in tests one they fire themselves, so that what a test says
// was or was not sent after the delay is exact rather than slept for.
type delayTimer interface {
	Reset(time.Duration) bool
	Stop() bool
}

func newAckDelayer(link Link, ethernet bool, mtu uint32) *ackDelayer {
	d := &ackDelayer{link: link, ethernet: ethernet, small: 2 * mtu, flows: make(map[flowKey]*flowAcks)}
	t := time.AfterFunc(time.Hour, d.flush)
	t.Stop()
	d.timer = t
	return d
}

// tcpInfo is what the delayer needs of a frame.
type tcpInfo struct {
	key    flowKey
	ack    uint32
	flags  header.TCPFlags
	hasAck bool // the ACK flag is set
	pure   bool // ACK flag alone, no payload, no SACK blocks
}

// parseTCP reads frame's flow and acknowledgement; ok is false for
// anything but TCP over option-less IPv4 or extension-less IPv6.
func parseTCP(frame []byte, ethernet bool) (info tcpInfo, ok bool) {
	p := frame
	if ethernet {
		if len(p) < header.EthernetMinimumSize {
			return info, false
		}
		p = p[header.EthernetMinimumSize:]
	}
	var seg []byte
	switch {
	case len(p) >= header.IPv4MinimumSize && p[0] == 0x45 && p[9] == uint8(header.TCPProtocolNumber):
		copy(info.key.addrs[:8], p[12:20])
		seg = p[header.IPv4MinimumSize:]
	case len(p) >= header.IPv6MinimumSize && p[0]>>4 == 6 && p[6] == uint8(header.TCPProtocolNumber):
		copy(info.key.addrs[:], p[8:40])
		seg = p[header.IPv6MinimumSize:]
	default:
		return info, false
	}
	if len(seg) < header.TCPMinimumSize {
		return info, false
	}
	t := header.TCP(seg)
	hlen := int(t.DataOffset())
	if hlen < header.TCPMinimumSize || hlen > len(seg) {
		return info, false
	}
	info.key.ports = binary.BigEndian.Uint32(seg[0:4])
	info.ack = t.AckNumber()
	info.flags = t.Flags()
	info.hasAck = info.flags&header.TCPFlagAck != 0
	info.pure = info.flags == header.TCPFlagAck && hlen == len(seg) && !hasSACK(seg[header.TCPMinimumSize:hlen])
	return info, true
}

// hasSACK reports whether TCP options carry SACK blocks.
func hasSACK(opts []byte) bool {
	for i := 0; i < len(opts); {
		switch kind := opts[i]; kind {
		case 0: // end of options
			return false
		case 1: // no-op
			i++
		default:
			if kind == 5 {
				return true
			}
			if i+1 >= len(opts) || opts[i+1] < 2 {
				return true // malformed: do not hold it
			}
			i += int(opts[i+1])
		}
	}
	return false
}

// filter takes the frames of one outgoing batch and returns those to send
// now, holding back the ACKs it delays and dropping held ACKs that the
// batch makes redundant. It reuses frames' backing array.
func (d *ackDelayer) filter(frames [][]byte) [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	out := frames[:0]
	for _, f := range frames {
		info, ok := parseTCP(f, d.ethernet)
		if !ok {
			out = append(out, f)
			continue
		}
		fl := d.flows[info.key]
		if fl != nil && fl.held != nil {
			// This frame carries the same or a newer acknowledgement.
			fl.held = nil
			d.held--
		}
		if info.flags&header.TCPFlagRst != 0 {
			// The flow is over: nothing more of it to delay.
			if fl != nil {
				d.forget(info.key, fl)
			}
			out = append(out, f)
			continue
		}
		if fl == nil || info.flags&header.TCPFlagSyn != 0 {
			// A new flow, or a new connection on an old flow's ports.
			if fl == nil {
				fl = d.newFlow(info.key, now)
			}
			fl.sent, fl.fin, fl.seen = 0, false, now
			if info.hasAck {
				fl.sent = info.ack
			}
			out = append(out, f) // no history: it goes
			continue
		}
		fl.seen = now
		if info.pure && !fl.fin {
			if advance := info.ack - fl.sent; advance != 0 && advance < d.small {
				fl.buf = append(fl.buf[:0], f...)
				fl.held, fl.ack = fl.buf, info.ack
				d.held++
				d.heldBy = append(d.heldBy, fl)
				if !d.armed {
					d.armed = true
					d.timer.Reset(ackDelay)
				}
				continue
			}
		}
		if info.hasAck {
			fl.sent = info.ack
		}
		if info.flags&header.TCPFlagFin != 0 {
			fl.fin = true
		}
		out = append(out, f)
	}
	if d.armed && d.held == 0 {
		// Every held ACK went out with the reply it waited for, the
		// common case in request/response: a timer left to fire would
		// run a goroutine, and wake a thread, to find nothing to send.
		d.timer.Stop()
		d.armed = false
		clear(d.heldBy)
		d.heldBy = d.heldBy[:0]
	}
	return out
}

// newFlow starts the state of a flow, reusing a forgotten flow's.
func (d *ackDelayer) newFlow(key flowKey, now time.Time) *flowAcks {
	if len(d.flows) >= maxAckFlows {
		d.prune(now)
	}
	var fl *flowAcks
	if n := len(d.free); n > 0 {
		fl = d.free[n-1]
		d.free = d.free[:n-1]
	} else {
		fl = &flowAcks{}
	}
	d.flows[key] = fl
	return fl
}

// forget drops a flow's state, keeping it for reuse.
func (d *ackDelayer) forget(key flowKey, fl *flowAcks) {
	delete(d.flows, key)
	if fl.held != nil {
		fl.held = nil
		d.held--
	}
	if len(d.free) < maxAckFlows {
		d.free = append(d.free, fl)
	}
}

// prune forgets flows idle for a while, or all of them if none is.
func (d *ackDelayer) prune(now time.Time) {
	for k, fl := range d.flows {
		if fl.held == nil && now.Sub(fl.seen) > 10*time.Second {
			d.forget(k, fl)
		}
	}
	if len(d.flows) >= maxAckFlows {
		for k, fl := range d.flows {
			if fl.held == nil {
				d.forget(k, fl)
			}
		}
	}
}

// flush sends every held ACK: their time is up. It sends under the lock,
// so that a held ACK never leaves after a newer frame of its flow.
func (d *ackDelayer) flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.armed = false
	if d.held == 0 || d.closed {
		return
	}
	out := d.out[:0]
	for _, fl := range d.heldBy {
		if fl.held != nil {
			out = append(out, fl.held)
			fl.sent = fl.ack
			fl.held = nil
		}
	}
	clear(d.heldBy)
	d.heldBy = d.heldBy[:0]
	d.held = 0
	d.link.SendFrames(out)
	clear(out)
	d.out = out[:0]
}

// close drops what is held and sends nothing more: the link is going away.
func (d *ackDelayer) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.timer.Stop()
	clear(d.flows)
	clear(d.heldBy)
	d.heldBy, d.free = nil, nil
	d.held = 0
}
