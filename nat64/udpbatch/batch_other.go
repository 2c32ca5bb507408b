//go:build !linux

package udpbatch

import (
	"net"
	"sync/atomic"
)

// batchIO is Linux-only; elsewhere UDPConn moves one datagram per call.
type batchIO struct {
	drops atomic.Uint64
	gso   bool
}

func newBatchIO(*net.UDPConn, bool, bool) *batchIO { return nil }

func (*batchIO) read([]Message) (int, error)  { panic("unreachable") }
func (*batchIO) write([]Message) (int, error) { panic("unreachable") }
