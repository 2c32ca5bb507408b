//go:build !linux

package udpbatch

import "net"

// batchIO is Linux-only; elsewhere UDPConn moves one datagram per call.
type batchIO struct{}

func newBatchIO(*net.UDPConn, bool) *batchIO { return nil }

func (*batchIO) read([]Message) (int, error)  { panic("unreachable") }
func (*batchIO) write([]Message) (int, error) { panic("unreachable") }
