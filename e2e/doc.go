// Package e2e holds geneve64's end-to-end tests: tunnel endpoints in every
// mode across the simulated NAT64 topologies of package netsim and over real
// loopback sockets.
package e2e
