package e2e

import (
	"crypto/rand"
	"encoding/binary"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"geneve64/geneve"
	"geneve64/nat64"
)

// hostile builds the bad packets one category at a time. Each is aimed at
// an endpoint whose identity is self and whose peer's is peer.
type hostile struct {
	rnd            *mrand.Rand
	self, peer     netip.Addr
	captured       [][]byte // authentic packets the endpoint's peer sent it
	sent           map[string]int
	wantAuthOrMalf int // packets that must end as "auth" or "malformed"
	wantReplay     int
}

func (h *hostile) packet(kind string) []byte {
	h.sent[kind]++
	switch kind {
	case "random":
		b := make([]byte, 1+h.rnd.IntN(1400))
		rand.Read(b)
		h.wantAuthOrMalf++
		return b
	case "truncated":
		c := h.captured[h.rnd.IntN(len(h.captured))]
		h.wantAuthOrMalf++
		return append([]byte(nil), c[:1+h.rnd.IntN(len(c)-1)]...)
	case "wrong-vni", "spoofed":
		// Well-formed, with both options, but no key: the tag is random.
		vni := uint32(42)
		if kind == "wrong-vni" {
			vni = 43 + h.rnd.Uint32N(1000)
		}
		opt, _ := nat64.AppendOption(nil, nat64.Endpoints{Src: h.peer, Dst: h.self})
		opt = append(opt, byte(nat64.AuthClass>>8), byte(nat64.AuthClass&0xff), nat64.AuthType, 6)
		tag := make([]byte, 24)
		rand.Read(tag)
		binary.BigEndian.PutUint64(tag, uint64(time.Now().UnixNano()))
		pkt, _ := (&geneve.Header{Protocol: geneve.ProtocolEthernet, VNI: vni, OptionBytes: append(opt, tag...)}).Append(nil)
		h.wantAuthOrMalf++
		return append(pkt, frame(2, 9, "spoofed frame")...)
	case "replayed":
		h.wantReplay++
		return h.captured[h.rnd.IntN(len(h.captured))]
	case "forged":
		c := append([]byte(nil), h.captured[h.rnd.IntN(len(h.captured))]...)
		c[len(c)-1-h.rnd.IntN(40)] ^= 1 << h.rnd.IntN(8) // one bit of the inner packet
		h.wantAuthOrMalf++
		return c
	}
	panic(kind)
}

// TestHostileInput: while 32 MiB cross an authenticated tunnel, an
// attacker floods both endpoints with random bytes, truncated frames,
// wrong VNIs, spoofed identities, replayed and forged authenticated frames.
// The transfer completes intact, no learned path moves, and the drop
// counters account for every bad packet.
func TestHostileInput(t *testing.T) {
	key := []byte("hostile-input test key: 32 bytes")
	tapNear, tapFar := &tap{}, &tap{}
	p := loopbackPair(t, pairOptions{key: key, tapNear: tapNear, tapFar: tapFar})
	far := startFarHost(t)
	c := p.httpClient(t)
	download(t, c, far.url("localhost", "/download"), 1, 1<<20) // traffic to capture
	farPath := p.far.Endpoint.Peers()[0].Path
	nearPath := p.near.Endpoint.Peers()[0].Path
	farBefore, nearBefore := dropsOf(p.far.Endpoint), dropsOf(p.near.Endpoint)

	kernelBefore := udp6RcvbufErrors()
	attacker, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	targets := []struct {
		h  *hostile
		to netip.AddrPort
	}{
		{&hostile{rnd: mrand.New(mrand.NewPCG(1, 1)), self: ip("2001:db8:b::1"), peer: ip("fdd9:f2f4:ed01::1"),
			captured: tapNear.captured(), sent: map[string]int{}}, p.far.Endpoint.LocalAddr()},
		{&hostile{rnd: mrand.New(mrand.NewPCG(2, 2)), self: ip("fdd9:f2f4:ed01::1"), peer: ip("2001:db8:b::1"),
			captured: tapFar.captured(), sent: map[string]int{}}, p.near.Endpoint.LocalAddr()},
	}
	for _, tg := range targets {
		if len(tg.h.captured) < 8 {
			t.Fatalf("captured only %d packets", len(tg.h.captured))
		}
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		download(t, c, far.url("localhost", "/download"), 2, 32<<20)
	}()
	kinds := []string{"random", "truncated", "wrong-vni", "spoofed", "replayed", "forged"}
	flooded := 0
flood:
	for {
		select {
		case <-done:
			break flood
		default:
		}
		for _, tg := range targets {
			for i := 0; i < 50; i++ {
				attacker.WriteToUDPAddrPort(tg.h.packet(kinds[(flooded+i)%len(kinds)]), tg.to)
			}
		}
		flooded += 50
		time.Sleep(time.Millisecond) // paced so the kernel's socket buffer drops none
		if flooded > 200000 {
			break
		}
	}
	<-done
	if flooded < 1000 {
		t.Fatalf("the transfer ended before the flood got going (%d packets)", flooded)
	}
	time.Sleep(200 * time.Millisecond)
	// The kernel may drop datagrams, bad or good, when a socket's buffer
	// overflows under load; those never reach the endpoint's counters. It
	// counts them itself: with none, the accounting must be exact.
	kernelDrops := udp6RcvbufErrors() - kernelBefore

	for i, tg := range targets {
		ep := []*nat64.Endpoint{p.far.Endpoint, p.near.Endpoint}[i]
		before := []map[nat64.DropReason]uint64{farBefore, nearBefore}[i]
		d := dropsOf(ep)
		authOrMalf := d[nat64.DropAuth] - before[nat64.DropAuth] + d[nat64.DropMalformed] - before[nat64.DropMalformed]
		replay := d[nat64.DropReplay] - before[nat64.DropReplay]
		var other uint64
		for r, n := range d {
			if r != nat64.DropAuth && r != nat64.DropMalformed && r != nat64.DropReplay {
				other += n - before[r]
			}
		}
		t.Logf("endpoint %d got %v: auth+malformed %d (want %d), replay %d (want %d), other %d, kernel drops %d",
			i, tg.h.sent, authOrMalf, tg.h.wantAuthOrMalf, replay, tg.h.wantReplay, other, kernelDrops)
		want, got := uint64(tg.h.wantAuthOrMalf+tg.h.wantReplay), authOrMalf+replay
		switch {
		case other != 0 || authOrMalf > uint64(tg.h.wantAuthOrMalf) || replay > uint64(tg.h.wantReplay):
			t.Errorf("endpoint %d: drops counted under the wrong reasons", i)
		case kernelDrops == 0 && got != want:
			t.Errorf("endpoint %d: %d bad packets counted of %d sent, and the kernel dropped none", i, got, want)
		case got+kernelDrops < want:
			t.Errorf("endpoint %d: %d bad packets unaccounted for", i, want-got-kernelDrops)
		}
	}
	if got := p.far.Endpoint.Peers()[0].Path; got != farPath {
		t.Errorf("the server's path moved to %s", got)
	}
	if got := p.near.Endpoint.Peers()[0].Path; got != nearPath {
		t.Errorf("the client's path moved to %s", got)
	}
	if n := len(p.far.Endpoint.Peers()); n != 1 {
		t.Errorf("the server has %d peers", n)
	}
}

func dropsOf(e *nat64.Endpoint) map[nat64.DropReason]uint64 {
	m := map[nat64.DropReason]uint64{}
	for _, r := range nat64.EndpointDropReasons() {
		m[r] = e.Stats().Drops(r)
	}
	return m
}

// udp6RcvbufErrors is the kernel's count of UDP/IPv6 datagrams dropped for
// a full socket buffer (0 where /proc/net/snmp6 does not exist).
func udp6RcvbufErrors() uint64 {
	b, err := os.ReadFile("/proc/net/snmp6")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "Udp6RcvbufErrors" {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n
		}
	}
	return 0
}
