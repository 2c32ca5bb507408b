package main

import (
	"encoding/json"
	"fmt"
	"os"

	"geneve64/internal/node"
)

// readyReport is the one line --ready-fd writes once every listener is up.
// A supervisor, a test or the bench learns from it that the endpoint
// serves, and the addresses of listeners bound to port 0, without reading
// log wording, which is for people and may change.
type readyReport struct {
	Outer    string   `json:"outer"`
	SOCKS    string   `json:"socks,omitempty"`
	Forwards []string `json:"forwards,omitempty"`
	Metrics  string   `json:"metrics,omitempty"`
}

// readyFile opens the descriptor --ready-fd names, before anything starts,
// so that a wrong number is a usage error rather than a failure after the
// tunnel came up. fd 0 means no report.
func readyFile(fd int) (*os.File, error) {
	if fd == 0 {
		return nil, nil
	}
	if fd < 0 {
		return nil, usagef("--ready-fd %d: want a descriptor number of 1 or more (0: off)", fd)
	}
	// The runtime's own descriptors (its poller, its wake-up event) are
	// open too, and closing one of them after the report would crash the
	// process: only what a parent can hand over, a pipe, socket, file or
	// terminal, is taken.
	if err := checkReadyFD(fd); err != nil {
		return nil, usagef("--ready-fd %d: %w", fd, err)
	}
	return os.NewFile(uintptr(fd), "ready-fd"), nil
}

// signalReady writes the report to f as one JSON line and closes f, so a
// reader waiting for end of file knows no second line comes; stdout and
// stderr stay open.
func signalReady(f *os.File, n *node.Node, metrics string) error {
	if f == nil {
		return nil
	}
	r := readyReport{Outer: n.Endpoint.LocalAddr().String(), Metrics: metrics}
	if n.SOCKS != nil {
		r.SOCKS = n.SOCKS.Addr().String()
	}
	for _, fw := range n.Forwards {
		r.Forwards = append(r.Forwards, fw.Addr().String())
	}
	b, _ := json.Marshal(r) // strings only: cannot fail
	fd := f.Fd()
	_, err := f.Write(append(b, '\n'))
	if fd > 2 {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("--ready-fd %d: %w", fd, err)
	}
	return nil
}
