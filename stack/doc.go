// Package stack terminates the tunnel in a gVisor netstack: a userspace
// TCP/IP stack bound to a frame link, so no TAP device and no root are
// needed. It offers the front-ends a net-like API (DialContext, Listen,
// ListenPacket, Ping) and, in egress mode, re-originates the flows peers
// send to any address from the host with ordinary sockets.
//
// It knows nothing of NAT64 or GENEVE: the link it sends frames into is any
// [Link], and the tunnel hands received frames to [Stack.DeliverFrames].
package stack
