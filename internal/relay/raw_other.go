//go:build !unix

package relay

import (
	"io"
	"net"
)

// copyRaw is Unix's alone: elsewhere kernel sockets are read the plain way.
func copyRaw(io.Writer, net.Conn) (int64, error) { return 0, errNotRaw }

// rawWriterFor is Unix's alone: elsewhere kernel sockets are written the
// plain way.
func rawWriterFor(dst io.Writer) io.Writer { return dst }
