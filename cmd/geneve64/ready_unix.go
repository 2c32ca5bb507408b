//go:build unix

package main

import (
	"errors"
	"fmt"
	"syscall"
)

// checkReadyFD accepts fd if it is open and something a parent passes
// down: a pipe, a socket, a regular file or a character device.
func checkReadyFD(fd int) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fmt.Errorf("not an open descriptor: %w", err)
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFREG, syscall.S_IFCHR:
		return nil
	}
	return errors.New("not a pipe, socket, file or terminal handed to this process")
}
