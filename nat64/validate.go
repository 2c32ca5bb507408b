package nat64

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"time"
)

// Path validation. A server (or an auto endpoint) learns where a peer is
// from the peer's packets, and a packet's source address can be forged:
// without a check, a forged packet made the server send a peer's frames
// (and every broadcast) to whatever address it named. So a new or moved
// path is first a candidate: the endpoint sends it an OAM echo request
// whose sequence number is an unpredictable challenge, and only an echo
// reply from that address carrying the challenge makes it the peer's path,
// as QUIC validates a path. Until then a new peer is sent nothing and a
// moved peer keeps its old path. geneve64 endpoints answer echo requests
// at once, so validation costs them one round trip and nothing else.
//
// Plain GENEVE peers (NoOption) do not speak this OAM: there a peer is its
// outer address anyway, never moves, and is not validated.

// challengeInterval is the least time between two challenges to one peer:
// a stream of forged packets from ever new sources makes the endpoint send
// at most one small packet per interval.
const challengeInterval = minMoveInterval

// unvalidatedTimeout expires a server's peer that never proved its path.
const unvalidatedTimeout = 10 * time.Second

// validates reports whether the endpoint validates learned paths.
func (e *Endpoint) validates() bool {
	return !e.cfg.NoOption && (e.cfg.Mode == Server || e.cfg.Mode == Auto)
}

// challenge makes from p's candidate path and sends it a challenge, unless
// one went to p within challengeInterval.
func (e *Endpoint) challenge(p *peer, from netip.AddrPort, now int64, b *sendBatch) {
	if last := p.lastChallenge.Load(); last != 0 && now-last < int64(challengeInterval) {
		e.stats.PathHeld.Add(1)
		return
	}
	p.lastChallenge.Store(now)
	var c [8]byte
	rand.Read(c[:])
	cand := &candidate{path: from, challenge: binary.BigEndian.Uint64(c[:])}
	p.candidate.Store(cand)
	var body [oamLen]byte
	e.enqueueTo(b, p, from, appendOAM(body[:0], oamMessage{kind: oamEchoRequest, seq: cand.challenge, stamp: now}), true)
	e.stats.Challenges.Add(1)
}

// candidate is a path a peer's packets came from, not yet proven.
type candidate struct {
	path      netip.AddrPort
	challenge uint64
}

// answered takes an echo reply from `from`: when it carries p's challenge
// from the candidate path, that path becomes p's. It reports whether the
// reply was the challenge's answer.
func (e *Endpoint) answered(p *peer, from netip.AddrPort, seq uint64, now int64) bool {
	cand := p.candidate.Load()
	if cand == nil || cand.challenge != seq || cand.path != from {
		return false
	}
	if !p.candidate.CompareAndSwap(cand, nil) {
		return false
	}
	if _, had := p.currentPath(); !had {
		e.log.Info("peer path validated", "identity", p.id, "path", from)
	}
	e.setPath(p, from, now)
	return true
}
