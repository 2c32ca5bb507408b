package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayout holds the package arrows the design states: the product
// binary carries neither tests nor the bench, geneve imports none of our
// packages, and stack and socks know nothing of NAT64.
func TestLayout(t *testing.T) {
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		var ours []string
		for _, p := range strings.Fields(string(out)) {
			if p == "geneve64" || strings.HasPrefix(p, "geneve64/") {
				ours = append(ours, p)
			}
		}
		return ours
	}
	for _, p := range deps("geneve64/cmd/geneve64") {
		if strings.HasPrefix(p, "geneve64/e2e") || strings.Contains(p, "bench") {
			t.Errorf("the product binary depends on %s", p)
		}
	}
	if d := deps("geneve64/geneve"); len(d) != 1 {
		t.Errorf("geneve depends on %v", d)
	}
	for _, pkg := range []string{"geneve64/stack", "geneve64/socks"} {
		for _, p := range deps(pkg) {
			if strings.HasPrefix(p, "geneve64/nat64") {
				t.Errorf("%s depends on %s", pkg, p)
			}
		}
	}
}
