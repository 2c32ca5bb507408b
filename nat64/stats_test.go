package nat64

import "testing"

// TestDropReasonsPartition: every reason is exported by the endpoint, the
// gateway or both, and only those both can drop for are in both lists.
func TestDropReasonsPartition(t *testing.T) {
	seen := map[DropReason]int{}
	for _, r := range EndpointDropReasons() {
		seen[r]++
	}
	for _, r := range GatewayDropReasons() {
		seen[r] += 2
	}
	for r := DropReason(0); r < numDropReasons; r++ {
		if seen[r] == 0 {
			t.Errorf("%s is exported by neither", r)
		}
	}
	for r, n := range seen {
		if n == 3 && r != DropMalformed && r != DropOption && r != DropSendError {
			t.Errorf("%s exported by both", r)
		}
	}
}
