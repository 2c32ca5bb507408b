//go:build !linux

package gateway

import (
	"errors"
	"runtime"
)

var errTUNClosed = errors.New("closed")

func openTUN(string) (tunDevice, error) {
	return nil, errors.New("gateway: runs on Linux only (it needs a TUN device and policy routing); this is " + runtime.GOOS)
}
