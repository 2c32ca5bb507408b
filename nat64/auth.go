package nat64

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"geneve64/geneve"
)

// The authentication option (docs/PROTOCOL.md, "Authenticated mode"): a
// class from RFC 8926's experimental range, critical, so that a receiver
// without the key drops the packet rather than trusting it.
const (
	AuthClass   uint16 = 0xFFF0
	AuthType    uint8  = 0x01 | geneve.CriticalBit
	authTagLen         = 16                 // HMAC-SHA256 truncated to 128 bits
	authDataLen        = 8 + 8 + authTagLen // sender, counter, tag
	// AuthOptionLen is the option on the wire, header included.
	AuthOptionLen = geneve.OptionHeaderLen + authDataLen
	// MinKeyLen is the shortest key accepted.
	MinKeyLen = 16
)

// ErrKey: a key file that does not hold a usable key.
var ErrKey = errors.New("nat64: bad key")

// ParseKey reads a key as base64 or hex text; white space is ignored. It
// must decode to at least MinKeyLen bytes.
func ParseKey(text []byte) ([]byte, error) {
	s := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, string(text))
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrKey)
	}
	var key []byte
	if b, err := hex.DecodeString(s); err == nil {
		key = b
	} else if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		key = b
	} else if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		key = b
	} else {
		return nil, fmt.Errorf("%w: neither hex nor base64 text (make one with: head -c 32 /dev/urandom | base64)", ErrKey)
	}
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrKey, len(key), MinKeyLen)
	}
	return key, nil
}

// authenticator signs and verifies packets with one key.
type authenticator struct {
	macs    sync.Pool // *macState
	counter atomic.Uint64
	// sender names this sending process in every packet it signs, so that
	// a receiver with no identity to go by (plain GENEVE, --no-option)
	// still keeps one replay window per sender, wherever its packets come
	// from. Random: two senders sharing a key must not collide.
	sender uint64
}

// authStamp is what a verified packet says of its sender.
type authStamp struct {
	sender, counter uint64
}

// macState is one HMAC-SHA256 instance with room for its sum, so that
// computing a tag allocates nothing.
type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// tag computes the MAC of pkt.
func (a *authenticator) tag(pkt []byte, into []byte) {
	m := a.macs.Get().(*macState)
	m.h.Reset()
	m.h.Write(pkt)
	copy(into, m.h.Sum(m.sum[:0]))
	a.macs.Put(m)
}

// newAuthenticator starts the send counter at the wall clock in
// nanoseconds and counts packets from there. A restarted sender thus starts
// above everything it sent before (it would need to send more than 10^9
// packets a second to overtake the clock) and needs no handshake, while
// packets sent close together keep close counters, which the receiver's
// replay window needs to accept reordering.
func newAuthenticator(key []byte) *authenticator {
	a := &authenticator{}
	a.counter.Store(uint64(time.Now().UnixNano()))
	var id [8]byte
	rand.Read(id[:]) // never fails (crypto/rand)
	a.sender = binary.BigEndian.Uint64(id[:])
	k := append([]byte(nil), key...)
	a.macs.New = func() any { return &macState{h: hmac.New(sha256.New, k)} }
	return a
}

func (a *authenticator) next() uint64 { return a.counter.Add(1) }

// appendOption appends an authentication option with a zero counter and
// tag: its place in a packet header, filled in by sign.
func appendAuthOption(dst []byte) []byte {
	dst = append(dst, byte(AuthClass>>8), byte(AuthClass&0xff), AuthType, authDataLen/4)
	return append(dst, make([]byte, authDataLen)...)
}

// sign fills in the authentication option at off (the option's start in
// pkt) with the sender, a fresh counter and the MAC over the whole packet
// with the tag zeroed.
func (a *authenticator) sign(pkt []byte, off int) {
	data := pkt[off+geneve.OptionHeaderLen : off+AuthOptionLen]
	binary.BigEndian.PutUint64(data[:8], a.sender)
	binary.BigEndian.PutUint64(data[8:16], a.next())
	tag := data[16:]
	clear(tag)
	a.tag(pkt, tag)
}

// verify checks the authentication option of a parsed packet and returns
// its sender and counter. pkt is the whole GENEVE packet h was parsed from;
// the tag is zeroed in place to compute the MAC and then restored.
func (a *authenticator) verify(h *geneve.Header, pkt []byte) (authStamp, bool) {
	var data []byte
	found := 0
	it := h.Options()
	for it.Next() {
		o := it.Option()
		if o.Class == AuthClass && o.Type == AuthType {
			data = o.Data
			found++
		}
	}
	if found != 1 || len(data) != authDataLen {
		return authStamp{}, false
	}
	tag := data[16:]
	var got, want [authTagLen]byte
	copy(got[:], tag)
	clear(tag)
	a.tag(pkt, want[:])
	copy(tag, got[:])
	if !hmac.Equal(got[:], want[:]) {
		return authStamp{}, false
	}
	return authStamp{sender: binary.BigEndian.Uint64(data[:8]), counter: binary.BigEndian.Uint64(data[8:16])}, true
}

// replayWindow accepts each counter once: anything newer than the highest
// seen, or within replaySize below it and not seen yet. It is the scheme of
// RFC 6479: a ring of bitmap words, one word more than the window needs, so
// that advancing clears whole words and never touches a bit still inside
// the window. Advancing costs at most len(bits) word writes whatever the
// jump, up to the top of the 64-bit range: the counter is the sender's to
// choose, and a key holder may choose any.
type replayWindow struct {
	mu      sync.Mutex
	highest uint64
	bits    [replayWords + 1]uint64
}

const (
	replayWords = 16               // the window's size in 64-bit words
	replaySize  = replayWords * 64 // 1,024 counters: reordering a tunnel may see
)

func (w *replayWindow) accept(c uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	const ring = uint64(len(w.bits))
	if c == 0 {
		return false // never sent: the sender's counter starts at its clock
	}
	word, bit := (c/64)%ring, uint64(1)<<(c%64)
	if c > w.highest {
		// Clear the words the window moves into, at most the whole ring.
		jump := c/64 - w.highest/64
		for i := uint64(1); i <= min(jump, ring); i++ {
			w.bits[(w.highest/64+i)%ring] = 0
		}
		w.highest = c
		w.bits[word] |= bit
		return true
	}
	if w.highest-c >= replaySize {
		return false // too old to tell: refuse
	}
	if w.bits[word]&bit != 0 {
		return false
	}
	w.bits[word] |= bit
	return true
}
