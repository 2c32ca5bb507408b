package tundev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

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
	vnet   bool // every packet carries a virtio_net_hdr (VnetHdrLen bytes) first
	closed atomic.Bool
	zero   [VnetHdrLen]byte

	// writev's arguments and results, and the function RawConn.Write
	// calls, bound once as read is; wmu makes writes one at a time.
	wmu   sync.Mutex
	gso   [VnetHdrLen]byte // WriteUDPGSO's header: a field, not a local that writev's iovec would move to the heap
	iov   [2]unix.Iovec
	write func(fd uintptr) bool
	wn    int
	werr  syscall.Errno

	// The function RawConn.Read calls, bound once so that no closure is
	// made per read; its arguments and results are here.
	read  func(fd uintptr) bool
	bufs  [][]byte
	sizes []int
	got   int
	errno error
}

// VnetHdrLen is the length of the virtio_net_hdr a device opened with
// OpenVnet puts before every packet it reads and expects before every
// packet written.
const VnetHdrLen = 10

// Open attaches to the device name of kind (creating it when privileged)
// and brings it up where it may. who names the part of geneve64 asking, for
// its errors.
func Open(name string, kind Kind, who string) (*Device, error) {
	return open(name, kind, who, false)
}

// OpenVnet is Open with a virtio_net_hdr before every packet, so that one
// write may carry a UDP GSO packet the kernel forwards as one and
// segments late (see WriteUDPGSO). Reads are whole packets still: the
// device offers the kernel no offloads.
func OpenVnet(name string, kind Kind, who string) (*Device, error) {
	return open(name, kind, who, true)
}

func open(name string, kind Kind, who string, vnet bool) (*Device, error) {
	what := strings.ToUpper(kind.String()) // for errors: "TUN", "TAP"
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%s: opening /dev/net/tun: %w: run as root or with CAP_NET_ADMIN; "+
				"to run unprivileged, /dev/net/tun must be open to all (mode 0666, the usual default) and root must "+
				"create the %s for this user once: ip tuntap add dev %s mode %s user $(id -u)", who, ErrPermission, what, name, kind)
		}
		return nil, fmt.Errorf("%s: opening /dev/net/tun: %w", who, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %s name %q: %w", who, what, name, err)
	}
	flags := uint16(unix.IFF_TUN)
	if kind == TAP {
		flags = unix.IFF_TAP
	}
	if vnet {
		flags |= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%s: attaching %s %s: %w: run as root, grant CAP_NET_ADMIN "+
				"(setcap cap_net_admin+ep geneve64), or have root create it for this user once: "+
				"ip tuntap add dev %s mode %s user $(id -u)", who, what, name, ErrPermission, name, kind)
		}
		if errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("%s: attaching %s %s: %w: is %s a device of another kind?", who, what, name, err, name)
		}
		return nil, fmt.Errorf("%s: attaching %s %s: %w", who, what, name, err)
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
	d := &Device{f: f, rc: rc, name: name, kind: kind, vnet: vnet}
	d.read = d.readReady
	d.write = d.writeReady
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

// HeaderLen is how many bytes come before each packet ReadBatch returns:
// VnetHdrLen on a device opened with OpenVnet, else 0.
func (d *Device) HeaderLen() int {
	if d.vnet {
		return VnetHdrLen
	}
	return 0
}

// Write sends one packet into the device (with a zero virtio_net_hdr
// before it on a device opened with OpenVnet).
func (d *Device) Write(p []byte) (int, error) {
	if !d.vnet {
		return d.f.Write(p)
	}
	d.wmu.Lock()
	n, err := d.writevLocked(d.zero[:], p)
	d.wmu.Unlock()
	return max(n-VnetHdrLen, 0), err
}

// WriteUDPGSO writes pkt, an IPv6 packet of one UDP header and a payload
// of segments of segSize bytes each (the last may be shorter), whose UDP
// checksum field holds the pseudo-header's sum (not its complement): the
// kernel carries it as one packet and cuts it into datagrams, checksums
// included, as late as it can. Only on a device opened with OpenVnet.
func (d *Device) WriteUDPGSO(pkt []byte, segSize int) error {
	if !d.vnet {
		return errors.New("tundev: UDP GSO needs a device opened with OpenVnet")
	}
	const (
		flagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
		gsoUDPL4      = 5 // VIRTIO_NET_HDR_GSO_UDP_L4
		l3, l4        = 40, 8
	)
	d.wmu.Lock()
	h := &d.gso
	h[0] = flagNeedsCsum
	h[1] = gsoUDPL4
	binary.NativeEndian.PutUint16(h[2:], l3+l4)           // hdr_len
	binary.NativeEndian.PutUint16(h[4:], uint16(segSize)) // gso_size
	binary.NativeEndian.PutUint16(h[6:], l3)              // csum_start
	binary.NativeEndian.PutUint16(h[8:], 6)               // csum_offset in the UDP header
	_, err := d.writevLocked(h[:], pkt)
	d.wmu.Unlock()
	return err
}

// writevLocked writes hdr and p as one packet without copying them
// together. The caller holds wmu.
func (d *Device) writevLocked(hdr, p []byte) (int, error) {
	d.iov[0].Base = &hdr[0]
	d.iov[0].SetLen(len(hdr))
	d.iov[1] = unix.Iovec{}
	if len(p) > 0 {
		d.iov[1].Base = &p[0]
		d.iov[1].SetLen(len(p))
	}
	d.wn, d.werr = 0, 0
	err := d.rc.Write(d.write)
	d.iov[0].Base, d.iov[1].Base = nil, nil
	if err != nil {
		if d.closed.Load() {
			return 0, os.ErrClosed
		}
		return 0, err
	}
	if d.werr != 0 {
		return 0, os.NewSyscallError("writev", d.werr)
	}
	return d.wn, nil
}

func (d *Device) writeReady(fd uintptr) bool {
	r, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&d.iov[0])), 2)
	if e == unix.EAGAIN {
		return false
	}
	d.wn, d.werr = int(r), e
	return true
}

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
	ifr, err := d.ioctl(unix.SIOCGIFMTU, nil)
	if err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

// SetMTU sets the device's MTU; it needs CAP_NET_ADMIN.
func (d *Device) SetMTU(mtu int) error {
	_, err := d.ioctl(unix.SIOCSIFMTU, func(ifr *unix.Ifreq) { ifr.SetUint32(uint32(mtu)) })
	return err
}

// ioctl makes an interface request about the device through a datagram
// socket, as ip(8) does, with set filling the request first.
func (d *Device) ioctl(req uint, set func(*unix.Ifreq)) (*unix.Ifreq, error) {
	return ifaceIoctl(d.name, req, set)
}

func ifaceIoctl(name string, req uint, set func(*unix.Ifreq)) (*unix.Ifreq, error) {
	s, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if s, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return nil, err
		}
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return nil, err
	}
	if set != nil {
		set(ifr)
	}
	if err := unix.IoctlIfreq(s, req, ifr); err != nil {
		return nil, err
	}
	return ifr, nil
}

// bringUp sets IFF_UP where it may; without CAP_NET_ADMIN the operator does
// it (ip link set NAME up), and the device still attaches.
func bringUp(name string) {
	ifr, err := ifaceIoctl(name, unix.SIOCGIFFLAGS, nil)
	if err != nil {
		return
	}
	flags := ifr.Uint16() | unix.IFF_UP
	_, _ = ifaceIoctl(name, unix.SIOCSIFFLAGS, func(r *unix.Ifreq) { r.SetUint16(flags) })
}
