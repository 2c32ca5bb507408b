package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestBenchCountsFailures: a rate or a throughput counts only the
// connections that worked, so the ones that did not must be reported
// beside it. Every other dial to a real sink fails here.
func TestBenchCountsFailures(t *testing.T) {
	snk, err := startSink()
	if err != nil {
		t.Fatal(err)
	}
	defer snk.close()
	var n atomic.Int64
	flaky := func(ctx context.Context) (net.Conn, error) {
		if n.Add(1)%2 == 0 {
			return nil, errors.New("refused by the test")
		}
		return snk.dial(ctx)
	}
	g, note := bulk(flaky, 4, sinkDownload, 200*time.Millisecond, snk)
	if g <= 0 || !strings.HasPrefix(note, "2 of 4 streams failed: refused by the test") {
		t.Errorf("bulk: %.2f Gbit/s, note %q", g, note)
	}
	if _, note := bulk(snk.dial, 2, sinkUpload, 100*time.Millisecond, snk); note != "" {
		t.Errorf("bulk without failures: note %q", note)
	}
	rate, failed := connRate(flaky, 200*time.Millisecond, 0)
	if rate <= 0 || failed == 0 {
		t.Errorf("connRate: %.0f/s, %d failed", rate, failed)
	}
	if c := rateComment(failed); !strings.HasSuffix(c, " failed") || strings.HasSuffix(c, " 0 failed") {
		t.Errorf("rateComment(%d) = %q", failed, c)
	}
}
