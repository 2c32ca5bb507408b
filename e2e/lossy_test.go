package e2e

import (
	"testing"
	"time"

	"geneve64/internal/netsim"
)

// TestTransferOnBadPaths: 8 MiB down and up through SOCKS and the tunnel
// on the simulated internet, over the two kinds of path that gVisor's TCP
// loss recovery handles worst. A bottleneck that drops in bursts (the
// simulator's policer, which like the kernel's takes or drops a GSO
// datagram whole) stalled RACK; a path that reorders makes a sender
// without RACK retransmit spuriously. Each transfer must finish in a
// bounded time: the limit is several times what it takes (1.4-9 s here),
// and only a stall reaches it. TestKernelPolicedDownload is the same
// bottleneck with the kernel's own policer.
func TestTransferOnBadPaths(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults netsim.Faults
	}{
		{"policer", netsim.Faults{Rate: 2000, Burst: 20, Delay: time.Millisecond}},
		{"reordering", netsim.Faults{Reorder: 0.02, ReorderBy: 3 * time.Millisecond, Delay: time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			watch(t)
			p := simPair(t, pairOptions{})
			far := startFarHost(t)
			c := p.httpClient(t)
			p.world.internet.SetFaults(tc.faults)
			const n, limit = 8 << 20, 45 * time.Second
			for i, dir := range []string{"download", "upload"} {
				start := time.Now()
				done := make(chan struct{})
				go func() {
					defer close(done)
					if dir == "download" {
						download(t, c, far.url("localhost", "/download"), uint64(30+i), n)
					} else {
						upload(t, c, far.url("localhost", "/upload"), uint64(30+i), n)
					}
				}()
				select {
				case <-done:
				case <-time.After(limit):
					t.Fatalf("%s of 8 MiB not done in %v: a stall\nfar: %v\nnear: %v", dir, limit, p.far.Stack.TCPConns(), p.near.Stack.TCPConns())
				}
				fs, ns := p.far.Stack.Stats(), p.near.Stack.Stats()
				t.Logf("%s of 8 MiB in %v; retransmitted segments far %d near %d, timeouts far %d near %d", dir,
					time.Since(start).Round(10*time.Millisecond), fs.TCPRetransmits, ns.TCPRetransmits, fs.TCPTimeouts, ns.TCPTimeouts)
			}
		})
	}
}
