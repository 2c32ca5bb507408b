package bridge

import (
	"slices"
	"sync"
	"testing"
)

type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) DeliverFrames(fs [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range fs {
		r.got = append(r.got, string(f[14:]))
	}
}

func (r *recorder) SendFrames(fs [][]byte) (int, error) { r.DeliverFrames(fs); return len(fs), nil }

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.got
	r.got = nil
	return g
}

// frame from MAC 02::src to 02::dst (0xff: broadcast) carrying body.
func frame(dst, src byte, body string) []byte {
	f := []byte{2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src, 8, 0}
	if dst == 0xff {
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	return append(f, body...)
}

// TestBridgeSwitches: frames go where their destination was learned, and
// everywhere but back when it is a group or unknown.
func TestBridgeSwitches(t *testing.T) {
	var tun, stack, dev recorder
	b := New(&tun, true)
	ps, pd := b.Add("netstack"), b.Add("tap0")
	ps.Attach(&stack)
	pd.Attach(&dev)
	check := func(step string, r *recorder, want ...string) {
		t.Helper()
		if got := r.take(); !slices.Equal(got, want) {
			t.Fatalf("%s: got %q, want %q", step, got, want)
		}
	}
	b.DeliverFrames([][]byte{frame(0xff, 9, "who has")}) // from peer MAC 9
	check("tunnel broadcast to the netstack", &stack, "who has")
	check("tunnel broadcast to the device", &dev, "who has")
	ps.SendFrames([][]byte{frame(0xff, 1, "stack hello")})
	check("netstack broadcast into the tunnel", &tun, "stack hello")
	check("netstack broadcast to the device", &dev, "stack hello")
	check("netstack broadcast not back", &stack)
	pd.SendFrames([][]byte{frame(1, 2, "to the stack")})
	check("device to the netstack's MAC", &stack, "to the stack")
	check("... not into the tunnel", &tun)
	b.DeliverFrames([][]byte{frame(2, 9, "for the device"), frame(7, 9, "unknown")})
	check("tunnel to the device's MAC, and unknown", &dev, "for the device", "unknown")
	check("the netstack gets the unknown only", &stack, "unknown")
	ps.SendFrames([][]byte{frame(9, 1, "to the peer")})
	check("netstack to a MAC behind the tunnel", &tun, "to the peer")
	check("... not to the device", &dev)
	b.DeliverFrames([][]byte{frame(9, 8, "hairpin"), {1, 2, 3}})
	check("a frame for the tunnel's own side, and a runt", &stack)
	check("... neither to the device", &dev)
}

// TestBridgeIP: with IP payloads there are no addresses: the tunnel's
// packets go to every port, a port's into the tunnel.
func TestBridgeIP(t *testing.T) {
	var tun, a, c recorder
	b := New(&tun, false)
	pa, pc := b.Add("netstack"), b.Add("tun0")
	pa.Attach(&a)
	pc.Attach(&c)
	pkt := frame(1, 2, "ip")
	b.DeliverFrames([][]byte{pkt})
	pc.SendFrames([][]byte{pkt})
	if len(a.take()) != 1 || len(c.take()) != 1 || len(tun.take()) != 1 {
		t.Fatal("IP packets not where expected")
	}
}

// TestBridgeMACTable: frames with ever new source addresses from the
// tunnel keep the table bounded.
func TestBridgeMACTable(t *testing.T) {
	var tun, s recorder
	b := New(&tun, true)
	b.Add("netstack").Attach(&s)
	b.Add("tap0").Attach(&s)
	f := frame(0xff, 0, "x")
	for i := range 3 * maxMACs {
		f[9], f[10], f[11] = byte(i>>16), byte(i>>8), byte(i)
		b.DeliverFrames([][]byte{f})
	}
	if len(b.macs) > maxMACs {
		t.Fatalf("%d addresses learned", len(b.macs))
	}
}

// TestBridgeAllocs: switching allocates nothing in steady state.
func TestBridgeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	b := New(discard{}, true)
	ps, pd := b.Add("netstack"), b.Add("tap0")
	ps.Attach(discard{})
	pd.Attach(discard{})
	in := [][]byte{frame(1, 9, "a"), frame(0xff, 9, "b")}
	fromStack := [][]byte{frame(9, 1, "c"), frame(0xff, 1, "d")}
	fromDev := [][]byte{frame(1, 2, "e")}
	step := func() {
		b.DeliverFrames(in)
		ps.SendFrames(fromStack)
		pd.SendFrames(fromDev)
	}
	step()
	if allocs := testing.AllocsPerRun(1000, step); allocs > 0 {
		t.Fatalf("%.1f allocations per round", allocs)
	}
}

type discard struct{}

func (discard) DeliverFrames([][]byte)             {}
func (discard) SendFrames(f [][]byte) (int, error) { return len(f), nil }
