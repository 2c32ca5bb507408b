package e2e

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// watch ends the test binary, naming t, if t runs past its limit. Without
// it a hung test meets the package's 10-minute timeout, whose goroutine
// dump can be too long for the name of the test it hung in to be seen: the
// name is printed again after the dump here.
func watch(t testing.TB) {
	limit := 4*time.Minute + *soakFor
	timer := time.AfterFunc(limit, func() {
		buf := make([]byte, 32<<20)
		buf = buf[:runtime.Stack(buf, true)]
		fmt.Fprintf(os.Stderr, "%s ran past %v; all goroutines:\n%s\n--- FAIL: %s ran past %v (goroutines above)\n",
			t.Name(), limit, buf, t.Name(), limit)
		os.Exit(2)
	})
	t.Cleanup(func() { timer.Stop() })
}

// relayStacks returns the stacks of the goroutines that relay connections:
// after a stalled transfer, where each one waits says which side holds
// the missing bytes.
func relayStacks() string {
	buf := make([]byte, 32<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "geneve64/internal/relay.") {
			out = append(out, g)
		}
	}
	return fmt.Sprintf("%d relay goroutines:\n%s", len(out), strings.Join(out, "\n\n"))
}
