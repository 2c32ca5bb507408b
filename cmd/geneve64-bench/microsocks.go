package main

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"time"
)

// The microsocks baseline: a small SOCKS5 server in C, what a user who can
// reach the far host directly would run instead of a tunnel. Its figures
// are measured in the same run, and the tunnel's latency and connection
// rate are printed as ratios of them.

// plainSOCKS holds microsocks's figures; nil when it is not installed.
type plainSOCKS struct {
	p50, p99 time.Duration
	connRate float64
}

// get returns the figures, zero when there are none.
func (p *plainSOCKS) get() plainSOCKS {
	if p == nil {
		return plainSOCKS{}
	}
	return *p
}

// ratio is a tunnel figure over microsocks's, 0 when there is none.
func (p *plainSOCKS) ratio(tunnel, base float64) float64 {
	if p == nil || base <= 0 {
		return 0
	}
	return tunnel / base
}

// startMicrosocks runs microsocks on a free loopback port in front of the
// sink. It has no readiness signal of its own: ready is when it accepts.
func startMicrosocks(sinkPort int) (*benchPair, error) {
	port, err := freePort("tcp4")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("microsocks", "-i", "127.0.0.1", "-p", strconv.Itoa(port))
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	bp := &benchPair{near: cmd, socks: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		target: net.JoinHostPort("127.0.0.1", strconv.Itoa(sinkPort))}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp4", bp.socks)
		if err == nil {
			c.Close()
			return bp, nil
		}
		if time.Now().After(deadline) {
			bp.stop()
			return nil, fmt.Errorf("bench: microsocks did not listen: %v", err)
		}
	}
}

// microsocksFigures measures microsocks: 1-byte ping-pong (unpinned, as
// users run it) and the connection rate, with the same clients and sink
// as the tunnel's figures. Without microsocks it says so and returns nil.
func microsocksFigures(snk *sink, o benchOpts, add func(benchResult)) (*plainSOCKS, error) {
	if _, err := exec.LookPath("microsocks"); err != nil {
		add(benchResult{Name: "microsocks (no tunnel): not installed", Unit: "-", Comment: "install it (Debian: microsocks) for the ratios"})
		return nil, nil
	}
	bp, err := startMicrosocks(snk.port())
	if err != nil {
		return nil, err
	}
	defer bp.stop()
	var p plainSOCKS
	p.p50, p.p99, _ = pingPong(bp.dialSOCKS, o.duration, nil)
	add(benchResult{Name: "microsocks (no tunnel): SOCKS5 1-byte ping-pong p50", Value: us(p.p50), Unit: "µs"})
	add(benchResult{Name: "microsocks (no tunnel): SOCKS5 1-byte ping-pong p99", Value: us(p.p99), Unit: "µs"})
	if o.want("latency") {
		addAll(add, costResults("per round trip, microsocks", pingPongCosts(bp.dialSOCKS, o.duration, bp.costProcs("microsocks", "")...)))
	}
	if o.want("conn") {
		var failed int
		p.connRate, failed = connRate(bp.dialSOCKS, o.duration, 0)
		add(benchResult{Name: "microsocks (no tunnel): connections (CONNECT, first byte, close)", Value: p.connRate, Unit: "conn/s", Comment: rateComment(failed)})
		addAll(add, costResults("per connection, microsocks", connRateCosts(bp.dialSOCKS, o.duration, bp.costProcs("microsocks", "")...)))
		time.Sleep(timeWait)
	}
	return &p, nil
}
