package gateway

import "testing"

func TestDecrement(t *testing.T) {
	for _, tc := range []struct {
		in, out uint8
		ok      bool
	}{{64, 63, true}, {2, 1, true}, {1, 0, false}, {0, defaultHopLimit, true}, {255, 254, true}} {
		if out, ok := decrement(tc.in); out != tc.out || ok != tc.ok {
			t.Errorf("decrement(%d) = %d %v", tc.in, out, ok)
		}
	}
}
