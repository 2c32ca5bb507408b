//go:build !unix

package main

import "errors"

// checkReadyFD: descriptors are not inherited by number here.
func checkReadyFD(int) error { return errors.New("not supported on this system") }
