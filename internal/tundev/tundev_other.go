//go:build !linux

package tundev

import (
	"errors"
	"os"
	"runtime"
)

// Kind is what a device carries.
type Kind int

const (
	// TUN devices carry IP packets.
	TUN Kind = iota
	// TAP devices carry Ethernet frames.
	TAP
)

// ErrPermission: see the Linux build.
var ErrPermission = os.ErrPermission

// Device is a TUN or TAP device; there are none on this system.
type Device struct{}

// VnetHdrLen: see the Linux build.
const VnetHdrLen = 10

// OpenVnet fails as Open does.
func OpenVnet(name string, kind Kind, who string) (*Device, error) { return Open(name, kind, who) }

// HeaderLen and WriteUDPGSO are never reached: Open fails.
func (*Device) HeaderLen() int                { return 0 }
func (*Device) WriteUDPGSO([]byte, int) error { return os.ErrClosed }

// Open fails: TUN and TAP devices are attached on Linux only.
func Open(_ string, _ Kind, who string) (*Device, error) {
	return nil, errors.New(who + ": TUN and TAP devices are supported on Linux only; this is " + runtime.GOOS)
}

// Name, ReadBatch, Write, Close, Dropped, MTU and SetMTU are never
// reached: Open fails.
func (*Device) Name() string                           { return "" }
func (*Device) ReadBatch([][]byte, []int) (int, error) { return 0, os.ErrClosed }
func (*Device) Write([]byte) (int, error)              { return 0, os.ErrClosed }
func (*Device) Close() error                           { return nil }
func (*Device) Dropped() uint64                        { return 0 }
func (*Device) MTU() (int, error)                      { return 0, os.ErrClosed }
func (*Device) SetMTU(int) error                       { return os.ErrClosed }

func (k Kind) String() string {
	if k == TAP {
		return "tap"
	}
	return "tun"
}
