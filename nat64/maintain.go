package nat64

import (
	"context"
	"time"
)

// maintainLoop sends keepalives, notices silent peers and expires idle ones.
func (e *Endpoint) maintainLoop() {
	defer e.wg.Done()
	// Tick five times per keepalive interval and, on a server, per peer
	// timeout, whichever is shorter, so neither fires late by much.
	tick := 5 * time.Second
	if e.cfg.Keepalive > 0 {
		tick = min(tick, e.cfg.Keepalive/5)
	}
	if e.single == nil {
		tick = min(tick, e.cfg.PeerTimeout/5)
	}
	tick = max(tick, 5*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-e.closed:
			return
		case <-t.C:
			e.maintain(e.clock())
		}
	}
}

func (e *Endpoint) maintain(now int64) {
	b := e.getBatch()
	defer e.putBatch(b)
	interval := int64(e.cfg.Keepalive)
	e.maintainMu.Lock()
	defer e.maintainMu.Unlock()
	e.scratch = e.appendPeers(e.scratch[:0])
	defer clear(e.scratch) // hold no expired peer until the next pass
	for _, p := range e.scratch {
		heard := max(p.lastHeard.Load(), p.created)
		_, proven := p.currentPath()
		if e.single == nil && (now-heard >= int64(e.cfg.PeerTimeout) || (!proven && now-p.created >= int64(unvalidatedTimeout))) {
			e.expire(p)
			continue
		}
		if interval <= 0 || !proven {
			continue
		}
		idle := now-p.lastSent.Load() >= interval || now-heard >= interval
		if idle && now-p.lastProbe.Load() >= interval {
			e.enqueueProbe(b, p, now)
		}
		if now-heard >= silentAfter*interval && p.silent.CompareAndSwap(false, true) {
			e.log.Warn("peer silent", "identity", p.id, "for", time.Duration(now-heard).Round(time.Millisecond))
			e.onSilent(p)
		}
	}
	e.flush(b)
}

func (e *Endpoint) enqueueProbe(b *sendBatch, p *peer, now int64) {
	p.lastProbe.Store(now)
	var body [oamLen]byte
	e.enqueue(b, p, appendOAM(body[:0], oamMessage{kind: oamEchoRequest, seq: p.seq.Add(1), stamp: now}), true)
}

// expire removes a server's peer that has been idle past PeerTimeout.
func (e *Endpoint) expire(p *peer) {
	e.mu.Lock()
	e.removeLocked(p)
	e.mu.Unlock()
	e.fullLogged.Store(false)
	if _, proven := p.currentPath(); !proven {
		// Forged sources make such peers at will: not worth a line each.
		e.log.Debug("unproven peer expired", "identity", p.id)
		return
	}
	e.log.Info("peer expired", "identity", p.id)
}

// onSilent looks for the peer again: a hostname PATH is resolved anew (its
// address may have changed), and auto mode goes back from a learned path to
// PATH. It runs in the background so the maintenance tick never blocks.
func (e *Endpoint) onSilent(p *peer) {
	if e.single == nil || (e.cfg.Path.Host == "" && e.cfg.Mode != Auto) {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		defer cancel()
		path := e.basePath
		if e.cfg.Path.Host != "" {
			var err error
			if path, err = e.resolvePath(ctx); err != nil {
				e.log.Warn("resolving PATH again failed", "path", e.cfg.Path.Host, "err", err)
				return
			}
		}
		if cur, _ := p.currentPath(); cur != path {
			p.path.Store(&path)
			e.stats.PathChanges.Add(1)
			e.log.Info("peer path reset", "identity", p.id, "from", cur, "to", path)
		}
	}()
}

// removeLocked takes p out of the peer table and the switch, for good.
// The caller holds e.mu.
func (e *Endpoint) removeLocked(p *peer) {
	if e.peers[p.key] == p {
		delete(e.peers, p.key)
	}
	p.expired.Store(true)
	e.sw.forget(p)
}
