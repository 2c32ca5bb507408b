//go:build !linux

package gateway

import "net"

// The gateway runs on Linux only (openTUN says so elsewhere); these keep
// the package building.

var ttlOOBLen = 0

func enableRecvTTL(*net.UDPConn) error    { return nil }
func ttlOf([]byte) uint8                  { return 0 }
func ttlMessage(b []byte, _ uint8) []byte { return nil }
