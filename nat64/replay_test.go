package nat64

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// replayModel is what the replay window must do, written as plainly as
// possible: every counter ever accepted is remembered, and a counter is
// accepted when it is new and no more than replaySize-1 below the highest.
type replayModel struct {
	highest uint64
	seen    map[uint64]bool
}

func (m *replayModel) accept(c uint64) bool {
	if c == 0 || m.seen[c] || (c < m.highest && m.highest-c >= replaySize) {
		return false
	}
	m.seen[c] = true
	m.highest = max(m.highest, c)
	return true
}

// checkReplay runs counters through the window and the model side by side.
func checkReplay(t *testing.T, counters []uint64) {
	t.Helper()
	var w replayWindow
	m := replayModel{seen: make(map[uint64]bool)}
	for i, c := range counters {
		if got, want := w.accept(c), m.accept(c); got != want {
			t.Fatalf("step %d: accept(%d) = %v, model says %v (highest %d)", i, c, got, want, m.highest)
		}
	}
}

// TestReplayWindowTopOfRange: the two counters that used to make the
// window loop forever are accepted at once, and a flood of ever larger
// jumps costs no more than small steps.
func TestReplayWindowTopOfRange(t *testing.T) {
	done := make(chan bool, 2)
	go func() {
		var w replayWindow
		done <- w.accept(math.MaxUint64-1) && w.accept(math.MaxUint64)
	}()
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("counters 2^64-2 and 2^64-1 refused")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("accepting counter 2^64-1 did not return")
	}
}

// TestReplayWindowModel compares the window with the model over random
// walks (small steps back and forth, jumps, repeats) and over the extremes:
// the top of the 64-bit range, jumps of exactly a word, a window, a ring.
func TestReplayWindowModel(t *testing.T) {
	top := uint64(math.MaxUint64)
	checkReplay(t, []uint64{top - 1, top, top, top - 1, top - 1023, top - 1024, 1, 0})
	checkReplay(t, []uint64{1, top, top - 5, 2, top - 1023})
	checkReplay(t, []uint64{63, 64, 127, 128, 64 + 1024, 64, 65, 1088 - 1023, 1088 - 1024})
	for _, jump := range []uint64{1, 63, 64, 65, 1023, 1024, 1025, 17 * 64, 18 * 64, 1 << 40} {
		base := uint64(1_000_000_007)
		seq := []uint64{base}
		for k := uint64(1); k < 50; k++ {
			seq = append(seq, base+k*jump, base+k*jump-1, base+(k-1)*jump, base+k*jump-1023, base+k*jump-1024)
		}
		checkReplay(t, seq)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for run := 0; run < 200; run++ {
		c := rng.Uint64N(1 << 62)
		if run%10 == 0 {
			c = top - 5000 // walks that reach the top of the range
		}
		var seq []uint64
		for range 2000 {
			switch r := rng.IntN(100); {
			case r < 60:
				c += rng.Uint64N(4)
			case r < 85:
				c -= min(c, rng.Uint64N(1200))
			case r < 95:
				c += rng.Uint64N(3000)
			default:
				if len(seq) > 0 {
					c = seq[rng.IntN(len(seq))] // an exact repeat
				}
			}
			seq = append(seq, c)
		}
		checkReplay(t, seq)
	}
}

// FuzzReplayWindow feeds the window any sequence of counters (8 bytes each)
// and holds it to the model.
func FuzzReplayWindow(f *testing.F) {
	seed := func(cs ...uint64) []byte {
		var b []byte
		for _, c := range cs {
			b = binary.BigEndian.AppendUint64(b, c)
		}
		return b
	}
	f.Add(seed(math.MaxUint64-1, math.MaxUint64))
	f.Add(seed(1000, 1005, 1003, 1003, 6000, 4977, 4976))
	f.Add(seed(1<<63, 1<<63+64, 1<<63+1))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 8*4096 {
			return
		}
		var cs []uint64
		for len(b) >= 8 {
			cs = append(cs, binary.BigEndian.Uint64(b))
			b = b[8:]
		}
		checkReplay(t, cs)
	})
}

func BenchmarkReplayWindowJump(b *testing.B) {
	var w replayWindow
	c := uint64(1)
	for b.Loop() {
		c += 1 << 40
		w.accept(c)
	}
}
