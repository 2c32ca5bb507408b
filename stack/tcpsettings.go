package stack

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// tcpSettings are the netstack's TCP settings, in one place.
type tcpSettings struct {
	SACK       bool
	Moderate   bool          // receive buffer moderation (auto-tuning)
	RcvMax     int           // largest receive buffer
	SndMax     int           // largest send buffer
	CC         string        // congestion control: reno or cubic
	RACK       bool          // RACK loss detection
	TimeWait   time.Duration // how long a closed connection holds its port
	ReuseTWait bool          // let new connections take ports in TIME-WAIT
}

// defaultTCP started from well-known values for a userspace stack carrying
// bulk traffic (SACK on, receive buffer moderation, receive and send
// buffers up to 4 MiB): benchmarked side by side (scripts/tcp-settings.sh),
// 8/6 MiB let more into flight than the outer UDP socket buffers absorb,
// and single-stream downloads fell to 1.3-1.9 Gbit/s where 4 MiB held
// 2.5-2.7. Cubic made no difference beyond noise, so reno stays.
//
// RACK loss detection is off. With it (gVisor's default), a sender whose
// burst was dropped at a bottleneck resent about two segments per
// retransmission timeout: 20 MB through a kernel policer of 2,000 GSO
// datagrams a second took over 40 s or stalled, against 4.7-7.4 s without
// (TestKernelPolicedDownload). The cost of going without is spurious
// retransmission on paths that reorder: 2-3x the retransmitted segments at
// 2% reordering, at the same transfer time (TestTransferOnBadPaths). The
// pinned gVisor still measures RACK's RTT when an ACK is processed rather
// than when it arrived. Tailscale's netstack turned RACK off for the same
// reason. Config.TCP "rack=on" (GENEVE64_TCP for the command) brings it back
// for experiments.
//
// Then what connection churn needs: without TIME-WAIT reuse, tens of
// thousands of closed connections hold every ephemeral port and new
// connections fail; with reuse, TIME-WAIT's length only decides how many
// closed endpoints sit in memory (a 5 s TIME-WAIT held 20,000 of them,
// 200 MB, at 4,000 connections per second), so it is 1 s.
var defaultTCP = tcpSettings{
	SACK: true, Moderate: true, RcvMax: 4 << 20, SndMax: 4 << 20,
	CC: "reno", RACK: false, TimeWait: time.Second, ReuseTWait: true,
}

// parseTCPSettings lays spec (Config.TCP) over the defaults, for
// benchmarking alternatives without rebuilding: e.g. "cc=cubic,rack=on,
// rcvbuf=4194304,sndbuf=4194304,timewait=60s,twreuse=off".
func parseTCPSettings(spec string) (tcpSettings, error) {
	t := defaultTCP
	if spec == "" {
		return t, nil
	}
	for _, kv := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		var err error
		switch k {
		case "cc":
			t.CC = v
		case "rack":
			t.RACK, err = onOff(v)
		case "sack":
			t.SACK, err = onOff(v)
		case "moderate":
			t.Moderate, err = onOff(v)
		case "rcvbuf":
			t.RcvMax, err = strconv.Atoi(v)
		case "sndbuf":
			t.SndMax, err = strconv.Atoi(v)
		case "timewait":
			t.TimeWait, err = time.ParseDuration(v)
		case "twreuse":
			t.ReuseTWait, err = onOff(v)
		default:
			err = fmt.Errorf("unknown key")
		}
		if err != nil {
			return t, fmt.Errorf("stack: TCP setting %q: %v", kv, err)
		}
	}
	return t, nil
}

// onOff parses a switch of Config.TCP: a typing mistake must not turn
// a setting off silently.
func onOff(v string) (bool, error) {
	switch v {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("want on or off")
}

func applyTCPSettings(s *gvstack.Stack, spec string) error {
	t, err := parseTCPSettings(spec)
	if err != nil {
		return err
	}
	sack := tcpip.TCPSACKEnabled(t.SACK)
	moderate := tcpip.TCPModerateReceiveBufferOption(t.Moderate)
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: min(tcp.DefaultReceiveBufferSize, t.RcvMax), Max: t.RcvMax}
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: min(tcp.DefaultSendBufferSize, t.SndMax), Max: t.SndMax}
	cc := tcpip.CongestionControlOption(t.CC)
	recovery := tcpip.TCPRecovery(0)
	if t.RACK {
		recovery = tcpip.TCPRACKLossDetection
	}
	tw := tcpip.TCPTimeWaitTimeoutOption(t.TimeWait)
	reuse := tcpip.TCPTimeWaitReuseDisabled
	if t.ReuseTWait {
		reuse = tcpip.TCPTimeWaitReuseGlobal
	}
	for _, o := range []struct {
		name string
		opt  tcpip.SettableTransportProtocolOption
	}{
		{"SACK", &sack}, {"receive buffer moderation", &moderate}, {"receive buffer", &rcv}, {"send buffer", &snd},
		{"congestion control " + t.CC, &cc}, {"recovery", &recovery}, {"TIME-WAIT timeout", &tw}, {"TIME-WAIT reuse", &reuse},
	} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o.opt); err != nil {
			return fmt.Errorf("stack: setting TCP %s: %s", o.name, err)
		}
	}
	return nil
}
