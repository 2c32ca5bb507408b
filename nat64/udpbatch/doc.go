// Package udpbatch moves UDP datagrams in batches: a PacketConn interface
// that an endpoint, a gateway or a simulated network implements, and
// ListenUDP, a real socket that on Linux reads and writes many datagrams
// per system call (recvmmsg, sendmmsg) and lets the kernel coalesce them
// (UDP GSO and GRO).
//
// It is a package of its own, as wireguard-go's conn is, because socket
// I/O is its own concern with its own platform code and its own tests:
// nat64 holds the protocol (modes, peers, the option, the gateway's
// rules) and reaches the network only through PacketConn, so the same
// endpoint runs on real sockets, on the simulator in internal/netsim and
// on test doubles.
package udpbatch
