//go:build linux

package gateway

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

var errTUNClosed = os.ErrClosed

// openTUN attaches to TUN device name (creating it when privileged) and
// brings it up if it may. It needs CAP_NET_ADMIN, or a persistent TUN the
// operator created for this user (ip tuntap add dev NAME mode tun user USER).
func openTUN(name string) (tunDevice, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("gateway: opening /dev/net/tun: %w: run as root or with CAP_NET_ADMIN; "+
				"to run unprivileged, /dev/net/tun must be open to all (mode 0666, the usual default) and root must "+
				"create the TUN for this user once: ip tuntap add dev %s mode tun user $(id -u)", err, name)
		}
		return nil, fmt.Errorf("gateway: opening /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("gateway: TUN name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("gateway: attaching TUN %s: %w: run as root, grant CAP_NET_ADMIN "+
				"(setcap cap_net_admin+ep geneve64), or have root create it for this user once: "+
				"ip tuntap add dev %s mode tun user $(id -u)", name, err, name)
		}
		return nil, fmt.Errorf("gateway: attaching TUN %s: %w", name, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	bringUp(name)
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}

// bringUp sets IFF_UP where it may; without CAP_NET_ADMIN the operator does
// it (ip link set NAME up), and the gateway still works.
func bringUp(name string) {
	s, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return
	}
	if unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr) != nil {
		return
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	_ = unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr)
}
