package e2e

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// watch ends the test binary, naming t, if t runs past its limit. Without
// it a hung test meets the package's 10-minute timeout, whose goroutine
// dump can be too long for the name of the test it hung in to be seen: the
// name is printed again after the dump here.
func watch(t *testing.T) {
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
