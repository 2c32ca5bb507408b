package tundev

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

// Kind is what a device carries.
type Kind int

const (
	// TUN devices carry IP packets.
	TUN Kind = iota
	// TAP devices carry Ethernet frames.
	TAP
)

func (k Kind) String() string {
	if k == TAP {
		return "tap"
	}
	return "tun"
}

// ErrPermission is wrapped by the errors of Open when the process may not
// open /dev/net/tun or attach to the device.
var ErrPermission = os.ErrPermission

// Device is an open TUN or TAP device.
type Device struct {
	f      *os.File
	rc     syscall.RawConn
	name   string
	kind   Kind
	closed atomic.Bool

	// The function RawConn.Read calls, bound once so that no closure is
	// made per read; its arguments and results are here.
	read  func(fd uintptr) bool
	bufs  [][]byte
	sizes []int
	got   int
	errno error
}

// Open attaches to the device name of kind (creating it when privileged)
// and brings it up where it may. who names the part of geneve64 asking, for
// its errors.
func Open(name string, kind Kind, who string) (*Device, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%s: opening /dev/net/tun: %w: run as root or with CAP_NET_ADMIN; "+
				"to run unprivileged, /dev/net/tun must be open to all (mode 0666, the usual default) and root must "+
				"create the %s for this user once: ip tuntap add dev %s mode %s user $(id -u)", who, ErrPermission, strings.ToUpper(kind.String()), name, kind)
		}
		return nil, fmt.Errorf("%s: opening /dev/net/tun: %w", who, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %s name %q: %w", who, strings.ToUpper(kind.String()), name, err)
	}
	flags := uint16(unix.IFF_TUN)
	if kind == TAP {
		flags = unix.IFF_TAP
	}
	ifr.SetUint16(flags | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%s: attaching %s %s: %w: run as root, grant CAP_NET_ADMIN "+
				"(setcap cap_net_admin+ep geneve64), or have root create it for this user once: "+
				"ip tuntap add dev %s mode %s user $(id -u)", who, strings.ToUpper(kind.String()), name, ErrPermission, name, kind)
		}
		if errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("%s: attaching %s %s: %w: is %s a device of another kind?", who, strings.ToUpper(kind.String()), name, err, name)
		}
		return nil, fmt.Errorf("%s: attaching %s %s: %w", who, strings.ToUpper(kind.String()), name, err)
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
	d := &Device{f: f, rc: rc, name: name, kind: kind}
	d.read = d.readReady
	return d, nil
}

// Name is the device's name.
func (d *Device) Name() string { return d.name }

// ReadBatch waits for a packet, then reads as many as are ready, up to
// len(bufs), each into its own buffer, with its length in sizes. After
// Close it returns os.ErrClosed.
func (d *Device) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	d.bufs, d.sizes, d.got, d.errno = bufs, sizes, 0, nil
	err := d.rc.Read(d.read)
	d.bufs, d.sizes = nil, nil
	if err != nil {
		if d.closed.Load() {
			return 0, os.ErrClosed // RawConn says "use of closed file", which os.ErrClosed does not match
		}
		return 0, err
	}
	if d.got == 0 && d.errno != nil {
		return 0, d.errno
	}
	return d.got, nil
}

// readReady reads packets until none is ready or the batch is full; it
// reports false (wait) only when it got none.
func (d *Device) readReady(fd uintptr) bool {
	for d.got < len(d.bufs) && d.got < len(d.sizes) {
		n, err := unix.Read(int(fd), d.bufs[d.got])
		if err == unix.EAGAIN || err == unix.EINTR {
			break
		}
		if err != nil {
			d.errno = os.NewSyscallError("read", err)
			return true
		}
		d.sizes[d.got] = n
		d.got++
	}
	return d.got > 0
}

// Write sends one packet into the device.
func (d *Device) Write(p []byte) (int, error) { return d.f.Write(p) }

// Close detaches from the device; a persistent one stays.
func (d *Device) Close() error {
	d.closed.Store(true)
	return d.f.Close()
}

// Dropped is the device's tx_dropped: packets the kernel could not queue
// towards this reader because the device's queue was full.
func (d *Device) Dropped() uint64 {
	b, err := os.ReadFile("/sys/class/net/" + d.name + "/statistics/tx_dropped")
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// MTU reads the device's MTU.
func (d *Device) MTU() (int, error) {
	s, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		s, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(d.name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFMTU, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

// SetMTU sets the device's MTU; it needs CAP_NET_ADMIN.
func (d *Device) SetMTU(mtu int) error {
	s, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		s, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(d.name)
	if err != nil {
		return err
	}
	ifr.SetUint32(uint32(mtu))
	return unix.IoctlIfreq(s, unix.SIOCSIFMTU, ifr)
}

// bringUp sets IFF_UP where it may; without CAP_NET_ADMIN the operator does
// it (ip link set NAME up), and the device still attaches.
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
