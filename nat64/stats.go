package nat64

import "sync/atomic"

// DropReason says why a packet was not delivered or forwarded.
type DropReason uint8

// Reasons a packet is dropped, in the order receivers check them where that applies.
const (
	DropMalformed  DropReason = iota // not a well-formed GENEVE packet
	DropVNI                          // another tunnel's VNI
	DropCritical                     // an unknown critical option (RFC 8926 section 3.5)
	DropOption                       // NAT64 option missing, repeated, or malformed
	DropIdentity                     // option names identities this endpoint does not accept
	DropPeerLimit                    // a new peer while the peer table is full
	DropOAM                          // an OAM packet this endpoint does not understand
	DropNoPeer                       // an outgoing frame with no peer or no known path
	DropSendError                    // the outer socket refused the packet
	DropNotAllowed                   // gateway: an address outside the allowed prefixes
	DropSpoofed                      // gateway: option source is not the packet's source
	DropNotGENEVE                    // gateway: not GENEVE on the expected port
	DropAuth                         // authenticated mode: no valid authentication option
	DropReplay                       // authenticated mode: a counter seen before, or too old
	DropFloodLimit                   // server: a peer's broadcast, multicast or unknown frames past GroupRate
	DropIsolated                     // server with IsolatePeers: a frame from one peer to another
	DropForbidden                    // gateway: a destination it never relays to (GatewayRefusal says which)
	numDropReasons
)

var dropNames = [numDropReasons]string{
	"malformed", "vni", "critical", "option", "identity", "peer-limit", "oam",
	"no-peer", "send-error", "not-allowed", "spoofed", "not-geneve", "auth", "replay",
	"flood-limit", "isolated", "forbidden",
}

// String returns the reason's name as used in logs and metrics labels.
func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// EndpointDropReasons lists the reasons an endpoint drops for, and
// GatewayDropReasons a gateway's: what each exports.
func EndpointDropReasons() []DropReason {
	return []DropReason{DropMalformed, DropVNI, DropCritical, DropOption, DropIdentity, DropPeerLimit, DropOAM,
		DropNoPeer, DropSendError, DropAuth, DropReplay, DropFloodLimit, DropIsolated}
}

// GatewayDropReasons: see EndpointDropReasons.
func GatewayDropReasons() []DropReason {
	return []DropReason{DropMalformed, DropOption, DropNotAllowed, DropSpoofed, DropNotGENEVE, DropForbidden, DropSendError}
}

// Stats are an endpoint's or a gateway's counters. They are updated
// atomically on the packet path and may be read at any time.
type Stats struct {
	FramesIn    atomic.Uint64 // inner frames delivered from peers
	BytesIn     atomic.Uint64 // inner bytes delivered from peers
	FramesOut   atomic.Uint64 // inner frames sent to peers
	BytesOut    atomic.Uint64 // inner bytes sent to peers
	Forwarded   atomic.Uint64 // frames switched from one peer to another (server)
	OAMIn       atomic.Uint64 // valid OAM packets received
	OAMOut      atomic.Uint64 // OAM packets sent
	PathChanges atomic.Uint64 // learned paths set or moved
	PathHeld    atomic.Uint64 // path moves refused by the rate limit (the packet itself was accepted)
	Challenges  atomic.Uint64 // path validation challenges sent
	Evicted     atomic.Uint64 // peers that never proved their path, dropped for a newcomer
	drops       [numDropReasons]atomic.Uint64
}

// Drop counts one dropped packet.
func (s *Stats) Drop(r DropReason) { s.drops[r].Add(1) }

// Drops returns how many packets were dropped for r.
func (s *Stats) Drops(r DropReason) uint64 { return s.drops[r].Load() }

// TotalDrops returns the drops of every reason added up.
func (s *Stats) TotalDrops() uint64 {
	var n uint64
	for i := range s.drops {
		n += s.drops[i].Load()
	}
	return n
}
