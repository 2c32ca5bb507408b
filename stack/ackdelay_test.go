package stack

import (
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// captureLink records what the delayer sends on its own (held ACKs).
type captureLink struct {
	mu     sync.Mutex
	frames [][]byte
}

func (l *captureLink) SendFrames(frames [][]byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range frames {
		l.frames = append(l.frames, append([]byte(nil), f...))
	}
	return len(frames), nil
}

func (l *captureLink) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.frames)
}

func ackFrame(ack uint32) []byte {
	return buildSegment(segSpec{seq: 5000, ack: ack, flags: header.TCPFlagAck, window: 100, tsval: 1})
}

// ackFrame2 is an ACK of another flow than ackFrame's.
func ackFrame2(ack uint32) []byte {
	return buildSegment(segSpec{v6: true, seq: 7000, ack: ack, flags: header.TCPFlagAck, window: 100})
}

// manualTimer stands in for the delayer's timer: the test fires it.
type manualTimer struct {
	mu    sync.Mutex
	armed bool
	after time.Duration
}

func (m *manualTimer) Reset(d time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	was := m.armed
	m.armed, m.after = true, d
	return was
}

func (m *manualTimer) Stop() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	was := m.armed
	m.armed = false
	return was
}

// fire runs d's flush as its timer would, if armed, and reports whether
// it was armed, and for how long.
func (m *manualTimer) fire(d *ackDelayer) (bool, time.Duration) {
	m.mu.Lock()
	armed, after := m.armed, m.after
	m.armed = false
	m.mu.Unlock()
	if armed {
		d.flush()
	}
	return armed, after
}

// manualDelayer is a delayer on link whose timer the test fires.
func manualDelayer(link Link) (*ackDelayer, *manualTimer) {
	d := newAckDelayer(link, false, 1400)
	m := &manualTimer{}
	d.timer = m
	return d, m
}

// passer returns a check that d lets want of one frame go at once.
func passer(t *testing.T, d *ackDelayer) func(name string, f []byte, want int) {
	return func(name string, f []byte, want int) {
		t.Helper()
		if got := len(d.filter([][]byte{f})); got != want {
			t.Fatalf("%s: %d frames go now, want %d", name, got, want)
		}
	}
}

// delayerUnderTest is a delayer whose timer the test fires, the link that
// records what it sends on its own, and its passer; closed at the end.
func delayerUnderTest(t *testing.T) (*captureLink, *ackDelayer, *manualTimer, func(string, []byte, int)) {
	link := &captureLink{}
	d, timer := manualDelayer(link)
	t.Cleanup(d.close)
	return link, d, timer, passer(t, d)
}

// TestAckDelayTimerStays: with two flows holding an ACK and one of them
// answered, the timer still sends the other's.
func TestAckDelayTimerStays(t *testing.T) {
	link, d, timer, pass := delayerUnderTest(t)
	pass("flow 1's first ACK", ackFrame(1000), 1)
	pass("flow 1 holds", ackFrame(1001), 0)
	pass("flow 2's first ACK", ackFrame2(50), 1)
	pass("flow 2 holds", ackFrame2(51), 0)
	pass("flow 1's reply", buildSegment(segSpec{seq: 5000, ack: 1001, flags: header.TCPFlagAck | header.TCPFlagPsh, window: 100, tsval: 1, payload: []byte("y")}), 1)
	if armed, _ := timer.fire(d); !armed || link.count() != 1 || string(link.frames[0]) != string(ackFrame2(51)) {
		t.Fatalf("with one flow still holding: timer armed %v, %d sent", armed, link.count())
	}
}

// TestAckDelay: a pure ACK that acknowledges little is held, and sent
// after the delay unless the flow sends something else first; everything
// else goes at once.
func TestAckDelay(t *testing.T) {
	link, d, timer, pass := delayerUnderTest(t)
	pass("a flow's first ACK", ackFrame(1000), 1)
	pass("an ACK of one byte more", ackFrame(1001), 0)
	if after := timer.after; !timer.armed || after != ackDelay {
		t.Fatalf("the delay's timer: armed %v for %v, want %v", timer.armed, after, ackDelay)
	}
	// The reply carries the acknowledgement: the held ACK is dropped,
	// and with nothing else held the timer is stopped, not left to fire
	// (a goroutine and a wake-up per round trip for nothing).
	pass("the reply", buildSegment(segSpec{seq: 5000, ack: 1001, flags: header.TCPFlagAck | header.TCPFlagPsh, window: 100, tsval: 1, payload: []byte("x")}), 1)
	if armed, _ := timer.fire(d); armed {
		t.Fatal("the delay's timer still armed with nothing held")
	}
	if link.count() != 0 {
		t.Fatalf("%d held ACKs sent after the reply carried them", link.count())
	}
	// No reply: the ACK leaves on its own, once the delay is up.
	pass("another small ACK", ackFrame(1002), 0)
	if link.count() != 0 {
		t.Fatal("a held ACK left before its delay")
	}
	timer.fire(d)
	if link.count() != 1 || string(link.frames[0]) != string(ackFrame(1002)) {
		t.Fatalf("held ACK sent %d times", link.count())
	}
	// What goes at once.
	pass("a duplicate ACK", ackFrame(1002), 1)
	pass("a transfer's ACK", ackFrame(1002+2*1400), 1)
	sack := ackFrame(4000)
	opts := sack[header.IPv4MinimumSize+header.TCPMinimumSize:]
	opts[2], opts[3] = 5, 10 // the timestamp option relabelled as SACK
	header.TCP(sack[header.IPv4MinimumSize:]).SetChecksum(0)
	pass("an ACK with SACK blocks", sack, 1)
	pass("not TCP", []byte{0x45, 0, 0, 20}, 1)
	// Small ACKs add up: once two full segments are unacknowledged, the
	// ACK goes at once, as Linux's delayed ACK would send it.
	pass("a flow's first ACK", ackFrame2(100), 1)
	pass("one byte", ackFrame2(101), 0)
	pass("a segment", ackFrame2(100+1400), 0)
	pass("past two segments", ackFrame2(100+2800), 1)
	// Closing drops what is held.
	before := link.count()
	pass("a small ACK before close", ackFrame2(100+2801), 0)
	d.close()
	d.flush() // the timer firing late, after close
	if link.count() != before {
		t.Fatal("a held ACK was sent after close")
	}
}

// TestAckDelayRealTimer: with the real timer, a held ACK leaves on its
// own within a bounded time.
func TestAckDelayRealTimer(t *testing.T) {
	link := &captureLink{}
	d := newAckDelayer(link, false, 1400)
	defer d.close()
	pass := passer(t, d)
	pass("a flow's first ACK", ackFrame(1000), 1)
	pass("a small ACK", ackFrame(1001), 0)
	deadline := time.Now().Add(5 * time.Second)
	for link.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(ackDelay / 4)
	}
	if link.count() != 1 {
		t.Fatalf("held ACK sent %d times", link.count())
	}
}

// TestAckDelayEnds: once a flow has sent its FIN its ACKs go at once (the
// peer's FIN is acknowledged without a wait), a RST forgets the flow, and
// a SYN on an old flow's ports starts afresh.
func TestAckDelayEnds(t *testing.T) {
	d := newAckDelayer(&captureLink{}, false, 1400)
	defer d.close()
	pass := passer(t, d)
	pass("a flow's first ACK", ackFrame(1000), 1)
	pass("a small ACK", ackFrame(1001), 0)
	pass("a FIN", buildSegment(segSpec{seq: 5000, ack: 1001, flags: header.TCPFlagAck | header.TCPFlagFin, window: 100}), 1)
	if d.held != 0 {
		t.Fatalf("%d ACKs still held after the FIN carried them", d.held)
	}
	pass("the ACK of the peer's FIN", ackFrame(1002), 1)
	pass("a RST", buildSegment(segSpec{seq: 5001, flags: header.TCPFlagRst, window: 0}), 1)
	if len(d.flows) != 0 {
		t.Fatalf("%d flows remembered after a RST", len(d.flows))
	}
	pass("a new flow's SYN", buildSegment(segSpec{seq: 9000, flags: header.TCPFlagSyn, window: 100}), 1)
	pass("its handshake's ACK", ackFrame(20000), 1)
	pass("a small ACK on the new connection", ackFrame(20001), 0)
	// A SYN on ports whose flow had ended starts afresh.
	pass("the FIN", buildSegment(segSpec{seq: 9001, ack: 20001, flags: header.TCPFlagAck | header.TCPFlagFin, window: 100}), 1)
	pass("a SYN on the same ports", buildSegment(segSpec{seq: 30000, flags: header.TCPFlagSyn, window: 100}), 1)
	pass("its handshake's ACK", ackFrame(40000), 1)
	pass("a small ACK after the new handshake", ackFrame(40001), 0)
}

// TestAckDelayAllocs: holding ACKs in steady state allocates nothing.
func TestAckDelayAllocs(t *testing.T) {
	d := newAckDelayer(&captureLink{}, false, 1400)
	defer d.close()
	ack := uint32(1000)
	batch := make([][]byte, 1)
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = ackFrame(ack + uint32(i))
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		batch[0] = frames[i%len(frames)]
		i++
		d.filter(batch)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per ACK", allocs)
	}
}

// FuzzParseTCP: any frame: no panic, and what is taken for a pure ACK
// has a TCP header that ends where the frame does.
func FuzzParseTCP(f *testing.F) {
	f.Add(ackFrame(1), false)
	f.Add(buildSegment(segSpec{ethernet: true, v6: true, ack: 9, flags: header.TCPFlagAck, payload: []byte("x")}), true)
	f.Fuzz(func(t *testing.T, frame []byte, ethernet bool) {
		info, ok := parseTCP(frame, ethernet)
		if !ok || !info.pure {
			return
		}
		p := frame
		if ethernet {
			p = p[header.EthernetMinimumSize:]
		}
		ipLen := header.IPv4MinimumSize
		if p[0]>>4 == 6 {
			ipLen = header.IPv6MinimumSize
		}
		if int(header.TCP(p[ipLen:]).DataOffset()) != len(p)-ipLen {
			t.Fatal("a pure ACK with a payload")
		}
	})
}
