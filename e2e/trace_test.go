package e2e

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"geneve64/geneve"
	"geneve64/internal/netsim"
)

// tcpTrace keeps the control segments (SYN, FIN, RST) of the inner TCP
// flows crossing a simulated link, with what the link did to each, so
// that a refused or reset connection can be explained after the fact.
type tcpTrace struct {
	mu   sync.Mutex
	recs []traceRec // a ring of the last len(recs)
	n    int        // records ever kept
}

type traceRec struct {
	at       time.Time
	src, dst netip.AddrPort
	flags    uint8
	seq, ack uint32
	fate     string
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

func newTCPTrace(n int) *tcpTrace { return &tcpTrace{recs: make([]traceRec, n)} }

// tap is a netsim tap: it decodes the GENEVE frame's inner IP packet.
func (tr *tcpTrace) tap(p netsim.Packet, fate string) {
	_, inner, err := geneve.Parse(p.Payload)
	if err != nil || len(inner) < 1 {
		return
	}
	if v := inner[0] >> 4; v != 4 && v != 6 && len(inner) > 14 {
		inner = inner[14:] // Ethernet
	}
	var src, dst netip.Addr
	var tcp []byte
	switch {
	case len(inner) >= 20 && inner[0]>>4 == 4 && inner[9] == 6:
		src, dst = netip.AddrFrom4([4]byte(inner[12:16])), netip.AddrFrom4([4]byte(inner[16:20]))
		tcp = inner[int(inner[0]&0x0f)*4:]
	case len(inner) >= 40 && inner[0]>>4 == 6 && inner[6] == 6:
		src, dst = netip.AddrFrom16([16]byte(inner[8:24])), netip.AddrFrom16([16]byte(inner[24:40]))
		tcp = inner[40:]
	default:
		return
	}
	if len(tcp) < 20 || tcp[13]&(tcpSYN|tcpFIN|tcpRST) == 0 {
		return
	}
	r := traceRec{at: time.Now(), fate: fate, flags: tcp[13],
		src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(tcp[0:])), dst: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(tcp[2:])),
		seq: binary.BigEndian.Uint32(tcp[4:]), ack: binary.BigEndian.Uint32(tcp[8:])}
	tr.mu.Lock()
	tr.recs[tr.n%len(tr.recs)] = r
	tr.n++
	tr.mu.Unlock()
}

// records returns the kept records, oldest first, that match.
func (tr *tcpTrace) records(match func(traceRec) bool) []traceRec {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []traceRec
	start := max(0, tr.n-len(tr.recs))
	for i := start; i < tr.n; i++ {
		if r := tr.recs[i%len(tr.recs)]; match(r) {
			out = append(out, r)
		}
	}
	return out
}

func (r traceRec) String() string {
	var f []string
	for _, x := range []struct {
		bit  uint8
		name string
	}{{tcpSYN, "SYN"}, {tcpACK, "ACK"}, {tcpFIN, "FIN"}, {tcpRST, "RST"}} {
		if r.flags&x.bit != 0 {
			f = append(f, x.name)
		}
	}
	s := fmt.Sprintf("%s %v -> %v %s seq %d ack %d", r.at.Format("15:04:05.000000"), r.src, r.dst, strings.Join(f, "|"), r.seq, r.ack)
	if r.fate != "" {
		s += " (" + r.fate + ")"
	}
	return s
}

// explainResets describes up to limit resets seen and, for each, every
// control segment kept of the flows on the same ports. Resets that carry
// an ACK come first: they answer a SYN (a refused connection); the others
// mostly answer stray segments after a close.
func (tr *tcpTrace) explainResets(limit int) string {
	rsts := tr.records(func(r traceRec) bool { return r.flags&tcpRST != 0 && r.flags&tcpACK != 0 })
	rsts = append(rsts, tr.records(func(r traceRec) bool { return r.flags&tcpRST != 0 && r.flags&tcpACK == 0 })...)
	tr.mu.Lock()
	kept := min(tr.n, len(tr.recs))
	tr.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%d resets among %d control segments kept", len(rsts), kept)
	seen := map[[2]uint16]bool{}
	for _, rst := range rsts {
		ports := [2]uint16{min(rst.src.Port(), rst.dst.Port()), max(rst.src.Port(), rst.dst.Port())}
		if seen[ports] || len(seen) >= limit {
			continue
		}
		seen[ports] = true
		fmt.Fprintf(&b, "\nports %d/%d:", ports[0], ports[1])
		for _, r := range tr.records(func(r traceRec) bool {
			return (r.src.Port() == ports[0] && r.dst.Port() == ports[1]) || (r.src.Port() == ports[1] && r.dst.Port() == ports[0])
		}) {
			b.WriteString("\n  " + r.String())
		}
	}
	return b.String()
}
