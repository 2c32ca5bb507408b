package udpbatch

import (
	"net/netip"
)

// MaxDatagram is the largest datagram read: the UDP maximum, so that large
// inner MTUs work on paths that allow them.
const MaxDatagram = 65535

// A Message is one outer UDP datagram in a batch.
type Message struct {
	// Buf holds the datagram. For ReadBatch it is the buffer to fill (its
	// length is the capacity used), which ReadBatch may replace with memory
	// of the connection's own, valid until the next ReadBatch: set it again
	// before each call. For WriteBatch, the datagram to send.
	Buf []byte
	// N is the number of bytes ReadBatch put into Buf.
	N int
	// Addr is the peer: the source after ReadBatch, the destination for WriteBatch.
	Addr netip.AddrPort
	// TTL is the IPv4 TTL or IPv6 hop limit, on sockets that handle it
	// (see ListenConfig): as received after ReadBatch (0: unknown), and
	// for WriteBatch the value to send with (0: the system's default).
	TTL uint8
}

// A PacketConn is a UDP socket that moves datagrams in batches: a real
// one (see [ListenUDP]) or a simulated network in tests. It moves datagrams in
// batches so that Linux can use one system call for many.
type PacketConn interface {
	// ReadBatch blocks until at least one datagram arrives, fills up to
	// len(msgs) of them and returns how many.
	ReadBatch(msgs []Message) (int, error)
	// WriteBatch sends msgs, each to its own Addr, and returns how many were
	// sent. It is safe to call from several goroutines at once.
	WriteBatch(msgs []Message) (int, error)
	// LocalAddr is the address the connection is bound to.
	LocalAddr() netip.AddrPort
	// BatchSize is the largest batch worth passing to ReadBatch and WriteBatch.
	BatchSize() int
	// Close unblocks ReadBatch and releases the connection.
	Close() error
}
