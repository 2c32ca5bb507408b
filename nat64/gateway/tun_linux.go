//go:build linux

package gateway

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

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
	f := os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	t := &tunFile{File: f, rc: rc, name: name}
	t.read = t.readReady
	return t, nil
}

// tunFile is a TUN device read in batches: a TUN gives one packet per
// read(2), but one wake-up of the poller can take all that are queued.
type tunFile struct {
	*os.File
	rc     syscall.RawConn
	name   string
	closed atomic.Bool

	// The function RawConn.Read calls, bound once so that no closure is
	// made per read; its arguments and results are here.
	read  func(fd uintptr) bool
	bufs  [][]byte
	sizes []int
	got   int
	errno error
}

// ReadBatch implements tunDevice.
func (t *tunFile) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	t.bufs, t.sizes, t.got, t.errno = bufs, sizes, 0, nil
	err := t.rc.Read(t.read)
	t.bufs, t.sizes = nil, nil
	if err != nil {
		if t.closed.Load() {
			return 0, os.ErrClosed // RawConn says "use of closed file", which os.ErrClosed does not match
		}
		return 0, err
	}
	if t.got == 0 && t.errno != nil {
		return 0, t.errno
	}
	return t.got, nil
}

// readReady reads packets until none is ready or the batch is full; it
// reports false (wait) only when it got none.
func (t *tunFile) readReady(fd uintptr) bool {
	for t.got < len(t.bufs) && t.got < len(t.sizes) {
		n, err := unix.Read(int(fd), t.bufs[t.got])
		if err == unix.EAGAIN || err == unix.EINTR {
			break
		}
		if err != nil {
			t.errno = os.NewSyscallError("read", err)
			return true
		}
		t.sizes[t.got] = n
		t.got++
	}
	return t.got > 0
}

// Close implements tunDevice; a ReadBatch it ends returns os.ErrClosed.
func (t *tunFile) Close() error {
	t.closed.Store(true)
	return t.File.Close()
}

// Dropped implements tunDevice: the device's tx_dropped, the packets the
// kernel could not queue towards the reader.
func (t *tunFile) Dropped() uint64 {
	b, err := os.ReadFile("/sys/class/net/" + t.name + "/statistics/tx_dropped")
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
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
