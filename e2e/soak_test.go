package e2e

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"geneve64/internal/memrelease"
	"geneve64/internal/netsim"
	"geneve64/internal/node"
	"geneve64/internal/procstat"
	"geneve64/internal/testpeer"
)

var soakFor = flag.Duration("soak", 0, "run TestSoak this long (CI: -soak 45s; off in a plain go test ./...)")

// TestSoak: steady bulk traffic and connection churn through an
// authenticated tunnel across the simulated NAT444+NAT64 and gateway, with
// loss, reordering, duplication and a NAT rebinding every 10 s. No
// connection may fail, every byte must arrive, and afterwards goroutines
// and live heap must be back near where they started.
func TestSoak(t *testing.T) {
	if *soakFor <= 0 {
		t.Skip("the soak runs with -soak DURATION (CI runs it for 45 s)")
	}
	// The process's memory policy, as the command runs it: this process
	// is the endpoints' process, and the RSS check below is about it.
	t.Cleanup(memrelease.Start())
	p := simPair(t, pairOptions{key: []byte("soak test key, thirty-two bytes!")})
	far := startFarHost(t)
	c := p.httpClient(t)
	download(t, c, far.url("localhost", "/download"), 1, 1<<20) // warm up
	runtime.GC()
	time.Sleep(300 * time.Millisecond)
	baseGoroutines := testpeer.Goroutines()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap := ms.HeapInuse
	baseRSS := selfRSS()

	trace := newTCPTrace(1 << 15) // about 6 s of connections; 4 MiB of the heap the test checks
	p.world.internet.SetTap(trace.tap)
	p.world.internet.SetFaults(netsim.Faults{Loss: 0.01, Reorder: 0.02, ReorderBy: 2 * time.Millisecond, Duplicate: 0.01})
	ctx, cancel := context.WithTimeout(context.Background(), *soakFor)
	defer cancel()
	var wg sync.WaitGroup
	var bytes, conns, failures atomic.Int64
	fail := func(format string, args ...any) {
		if failures.Add(1) == 1 {
			t.Log(relayStacks())
			t.Log(trace.explainResets(10))
		}
		t.Errorf(format, args...)
	}
	// Steady traffic: two streams of hash-checked downloads, watched for
	// stalls.
	var lastRead [2]atomic.Int64
	var downloads sync.WaitGroup
	for i := 0; i < 2; i++ {
		lastRead[i].Store(time.Now().UnixNano())
		downloads.Add(1)
		go func(seed uint64, last *atomic.Int64) {
			defer downloads.Done()
			for ctx.Err() == nil {
				const n = 4 << 20
				resp, err := c.Get(fmt.Sprintf("%s?n=%d&seed=%d", far.url("localhost", "/download"), n, seed))
				if err != nil {
					fail("download: %v", err)
					return
				}
				got, err := io.ReadAll(progressReader{resp.Body, last})
				resp.Body.Close()
				if err != nil || len(got) != n || streamHashOf(got) != streamHash(seed, n) {
					fail("download of %d bytes: %d arrived, %v", n, len(got), err)
					return
				}
				bytes.Add(n)
				seed++
			}
		}(uint64(100*(i+1)), &lastRead[i])
	}
	// The watch lasts as long as the downloads: the last one may stall
	// after the soak's time is up.
	downloadsDone := make(chan struct{})
	go func() { downloads.Wait(); close(downloadsDone) }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchStalls(downloadsDone, t, p, lastRead[:])
	}()
	// Churn: open, use, close, as fast as 64 clients go.
	d := p.socksDialer(t)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
				conn, err := d.DialContext(dctx, "tcp", net.JoinHostPort("10.42.0.1", strconv.Itoa(far.port)))
				dcancel()
				if err != nil {
					fail("churn dial: %v", err)
					return
				}
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n")
				b, err := io.ReadAll(conn)
				conn.Close()
				if err != nil || len(b) < 24 || string(b[len(b)-24:]) != "hello from the far side\n" {
					fail("churn request: %q %v", b, err)
					return
				}
				conns.Add(1)
			}
		}()
	}
	// NAT rebinding every 10 s.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				p.world.cgn.Rebind()
			}
		}
	}()
	wg.Wait()
	p.world.internet.SetFaults(netsim.Faults{})
	secs := soakFor.Seconds()
	t.Logf("soak %v: %d MiB downloaded (%.0f Mbit/s), %d connections (%.0f/s), %d failures, path changes %d",
		*soakFor, bytes.Load()>>20, float64(bytes.Load())*8/secs/1e6, conns.Load(), float64(conns.Load())/secs,
		failures.Load(), p.far.Endpoint.Stats().PathChanges.Load())
	// What a failure needs first: egress flows still open or refused at
	// the far end, and each stack's counters.
	t.Logf("far stack %+v; near stack %+v", p.far.Stack.Stats(), p.near.Stack.Stats())
	if failures.Load() != 0 {
		t.Fatalf("%d failures", failures.Load())
	}

	// Afterwards: connections end (TIME-WAIT is 1 s), idle flows and memory
	// come back.
	deadline := time.Now().Add(20 * time.Second)
	for {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		g := testpeer.Goroutines()
		rss := selfRSS()
		// Both endpoints live in this process: its RSS is theirs.
		rssBack := rss <= baseRSS+48<<20 || raceEnabled
		if g <= baseGoroutines+10 && ms.HeapInuse <= baseHeap+32<<20 && rssBack {
			t.Logf("goroutines %d (start %d), heap in use %d MiB (start %d MiB), RSS %d MiB (start %d MiB)",
				g, baseGoroutines, ms.HeapInuse>>20, baseHeap>>20, rss>>20, baseRSS>>20)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the soak: goroutines %d (start %d), heap in use %d MiB (start %d MiB), RSS %d MiB (start %d MiB)",
				g, baseGoroutines, ms.HeapInuse>>20, baseHeap>>20, rss>>20, baseRSS>>20)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// progressReader notes when each read returned data.
type progressReader struct {
	r    io.Reader
	last *atomic.Int64
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// watchStalls logs, once, what a stalled download needs to be explained: a
// download that read nothing for 15 s stalled (it moves megabytes a
// second). Where each relay waits, and every TCP connection of both
// stacks, say which side holds the missing bytes: unread at the near end
// (its receive queue), or never delivered (the far end retransmitting, or
// not).
func watchStalls(done <-chan struct{}, t *testing.T, p *pair, lastRead []atomic.Int64) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		for i := range lastRead {
			idle := time.Since(time.Unix(0, lastRead[i].Load()))
			if idle < 15*time.Second {
				continue
			}
			t.Logf("download %d has read nothing for %v", i, idle.Round(time.Second))
			for _, side := range []struct {
				name string
				n    *node.Node
			}{{"near", p.near}, {"far", p.far}} {
				var lines []string
				for _, c := range side.n.Stack.TCPConns() {
					if c.State != "TIME-WAIT" && c.State != "LISTEN" {
						lines = append(lines, c.String())
					}
				}
				t.Logf("%s stack %+v, %d TCP connections open:\n%s", side.name, side.n.Stack.Stats(), len(lines), strings.Join(lines, "\n"))
			}
			t.Log(relayStacks())
			return
		}
	}
}
func selfRSS() uint64 { return uint64(max(procstat.RSS(0), 0)) }
