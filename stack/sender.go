package stack

import (
	"sync"
	"time"
)

// Sending without a hand-off when the link is quiet. gVisor's TCP writes
// its packets one call at a time, from whichever goroutine is at work: the
// application's Write, or the TCP processor handling an ACK. Handing every
// packet to a goroutine of our own (gVisor's FIFO queueing discipline did)
// costs a wake-up per packet: in a request/response exchange, a third of
// the goroutine runs and a quarter of the system calls of each round
// trip. But in a bulk transfer that goroutine is what lets TCP go on
// producing segments while the last batch is in the kernel: sending on
// the writer's goroutine cost a single stream 10-25% of its rate.
//
// So the sender has two ways. While quiet, a packet goes out on the
// goroutine that wrote it. When the link is busy, packets join a queue
// that the sender's own goroutine drains in batches, as they did through
// the queueing discipline. Busy is any sign of a stream, which lasts
// hotFor after the last one: a packet written while another send is under
// way, a write of more than one frame (a large TCP segment cut up), or a
// write within minGap of the one before. Only one goroutine sends at a
// time, so packets leave in the order written.

// maxQueued bounds the frames waiting for the sending goroutine: a
// queueing discipline's limit (gVisor's FIFO held 1,024 packets). Past
// it, frames are dropped and counted, as a full queue drops them, and TCP
// sends them again.
const maxQueued = 4096

// hotFor is how long after the last contended send packets keep going
// through the queue: far longer than the gaps between a bulk transfer's
// writes, far shorter than a person's pause between requests.
const hotFor = 2 * time.Millisecond

// minGap: writes closer together than this are a stream, not a request and
// its answer. A round trip through the tunnel takes longer on any machine
// measured so far.
const minGap = 50 * time.Microsecond

// sender is the send side of a link endpoint.
type sender struct {
	link Link
	now  func() time.Time

	mu      sync.Mutex
	busy    bool          // a goroutine is in link.SendFrames
	queue   []*frameBatch // batches waiting, in order
	queued  int           // frames in queue
	hot     time.Time     // until when packets go through the queue
	last    time.Time     // the last write
	closed  bool
	wake    chan struct{} // the draining goroutine has work (capacity 1)
	done    chan struct{} // closed when the draining goroutine returns
	dropped Counter
	// free keeps a few sent batches, with their buffers, for the next
	// writes; more go to spill, which the garbage collector may empty. A
	// sync.Pool alone would not do: the goroutine that drains puts
	// batches in its own processor's slot, which a writer on another
	// cannot take, and every write would allocate a batch anew.
	free  []*frameBatch
	spill sync.Pool

	// Used only by the draining goroutine.
	spare []*frameBatch
	all   [][]byte
}

// maxFree bounds the batches kept for reuse beyond the garbage
// collector's reach: as many as a quiet link has in flight, and a small
// part of a busy one's queue (a batch of a large segment holds 64 KiB).
const maxFree = 16

func newSender(link Link) *sender {
	s := &sender{link: link, now: time.Now, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go s.drain()
	return s
}

// send sends b's frames, now on this goroutine or soon on the draining
// one, and keeps b for reuse once they are sent. The error is the
// link's, for a batch sent here; a queued batch's error is the draining
// goroutine's to see, as a queue's would be.
func (s *sender) send(b *frameBatch) error {
	if len(b.frames) == 0 {
		s.release(b)
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.release(b)
		return nil
	}
	now := s.now()
	if s.busy || len(b.frames) > 1 || now.Sub(s.last) < minGap {
		s.hot = now.Add(hotFor)
	}
	s.last = now
	if !s.busy && len(s.queue) == 0 && !now.Before(s.hot) {
		s.busy = true
		s.mu.Unlock()
		_, err := s.link.SendFrames(b.frames)
		s.release(b)
		s.mu.Lock()
		s.busy = false
		if len(s.queue) > 0 {
			s.signal()
		}
		s.mu.Unlock()
		return err
	}
	if s.queued+len(b.frames) > maxQueued {
		s.mu.Unlock()
		s.dropped.Add(uint64(len(b.frames)))
		s.release(b)
		return nil
	}
	s.queue = append(s.queue, b)
	s.queued += len(b.frames)
	if !s.busy {
		s.signal()
	}
	s.mu.Unlock()
	return nil
}

// signal wakes the draining goroutine, if it is not awake already.
func (s *sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// drain is the sender's goroutine: it sends what is queued, all of it in
// one batch, whenever no other send is under way.
func (s *sender) drain() {
	defer close(s.done)
	for range s.wake {
		for {
			s.mu.Lock()
			if s.closed || s.busy || len(s.queue) == 0 {
				// An inline send under way signals again when done.
				s.mu.Unlock()
				break
			}
			q := s.queue
			s.queue, s.queued = s.spare[:0], 0
			s.busy = true
			s.mu.Unlock()
			all := s.all[:0]
			for _, qb := range q {
				all = append(all, qb.frames...)
			}
			s.link.SendFrames(all)
			clear(all)
			s.all = all[:0]
			for _, qb := range q {
				s.release(qb)
			}
			clear(q)
			s.mu.Lock()
			s.spare = q[:0]
			s.busy = false
			s.mu.Unlock()
		}
	}
}

// close stops the draining goroutine; what is queued is dropped, as the
// link is going away.
func (s *sender) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	q := s.queue
	s.queue, s.queued = nil, 0
	close(s.wake)
	s.mu.Unlock()
	for _, b := range q {
		s.release(b)
	}
	<-s.done
}

// get returns an empty batch, reused when one is free.
func (s *sender) get() *frameBatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free[n-1] = nil
		s.free = s.free[:n-1]
		return b
	}
	if b, ok := s.spill.Get().(*frameBatch); ok {
		return b
	}
	return &frameBatch{}
}

// release empties b and keeps it for reuse.
func (s *sender) release(b *frameBatch) {
	clear(b.frames)
	b.frames = b.frames[:0]
	s.mu.Lock()
	if len(s.free) < maxFree {
		s.free = append(s.free, b)
		b = nil
	}
	s.mu.Unlock()
	if b != nil {
		s.spill.Put(b)
	}
}

// SendFrames implements Link for the ACK delayer's held ACKs: it copies
// frames, whose buffers the delayer reuses, into a batch of its own, so
// that they keep their place behind the frames written before them.
func (s *sender) SendFrames(frames [][]byte) (int, error) {
	b := s.get()
	for _, f := range frames {
		b.add(append(b.next(), f...))
	}
	return len(frames), s.send(b)
}
