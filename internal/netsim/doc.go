// Package netsim is an in-memory packet network for testing tunnel
// endpoints: IPv6-only sites, an IPv4 internet, plain stateful NAT64 and
// NAT44 boxes (random external ports, endpoint-dependent filtering, mapping
// timeouts, rebinding), NAT64 boxes with the extension gateway beside them,
// and fault injection (loss, duplication, reordering, delay, a policer)
// per segment.
//
// Endpoints run on it through the same udpbatch.PacketConn interface as on
// real sockets: [Host.Listen] is a nat64.ListenFunc.
//
// It lives under internal/, beside the product rather than among the
// tests (as Tailscale's natlab does), because the geneve64 demo runs the
// whole system on it, and the end-to-end tests use it too.
package netsim
