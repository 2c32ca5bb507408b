package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"geneve64/internal/bridge"
	"geneve64/internal/tundev"
)

// Device is a kernel TAP or TUN device attached to the endpoint's bridge:
// one more port beside the netstack, so the site's own network reaches
// the tunnel (--tap, --tun).
type Device struct {
	dev  *tundev.Device
	port *bridge.Port
	kind tundev.Kind
	// max is the largest packet that fits the tunnel: the inner MTU, plus
	// the Ethernet header on a TAP.
	max      int
	oversize atomic.Uint64
	log      *slog.Logger
	wg       sync.WaitGroup
}

// openDevice attaches to the device and makes its MTU the inner MTU: set
// where the process may, otherwise checked. A device MTU above the inner
// one would have the kernel hand over frames the tunnel cannot carry.
func openDevice(name string, kind tundev.Kind, mtu int, log *slog.Logger) (*Device, error) {
	dev, err := tundev.Open(name, kind, "node")
	if err != nil {
		return nil, err
	}
	d := &Device{dev: dev, kind: kind, max: mtu, log: log.With("device", name)}
	if kind == tundev.TAP {
		d.max += 14
	}
	have, err := dev.MTU()
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("node: reading the MTU of %s: %w", name, err)
	}
	if have != mtu {
		if err := dev.SetMTU(mtu); err != nil {
			if have > mtu {
				dev.Close()
				return nil, fmt.Errorf("node: %s has MTU %d, above the tunnel's inner MTU %d, and setting it failed (%w): "+
					"set it once as root: ip link set %s mtu %d", name, have, mtu, err, name, mtu)
			}
			d.log.Warn("device MTU below the tunnel's inner MTU: larger packets from the tunnel will be dropped", "mtu", have, "inner_mtu", mtu)
			d.max = have + (d.max - mtu)
		}
	}
	return d, nil
}

// start joins the device to port and starts reading it.
func (d *Device) start(port *bridge.Port) {
	d.port = port
	port.Attach(d)
	d.wg.Add(1)
	go d.readLoop()
}

// DeliverFrames writes the frames the bridge sends the device's way; one
// too large for the device is counted and dropped, never cut short.
func (d *Device) DeliverFrames(frames [][]byte) {
	for _, f := range frames {
		if len(f) > d.max {
			d.oversize.Add(1)
			continue
		}
		if _, err := d.dev.Write(f); err != nil && !errors.Is(err, os.ErrClosed) {
			d.log.Debug("device write failed", "err", err)
		}
	}
}

// readLoop hands what the kernel sends into the device to the bridge, as
// many packets per wake-up as are queued.
func (d *Device) readLoop() {
	defer d.wg.Done()
	const batch = 64
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, 65535)
	}
	sizes := make([]int, batch)
	frames := make([][]byte, 0, batch)
	for {
		n, err := d.dev.ReadBatch(bufs, sizes)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				d.log.Warn("device read failed", "err", err)
			}
			return
		}
		frames = frames[:0]
		for i := range n {
			if sizes[i] > d.max {
				d.oversize.Add(1)
				continue
			}
			frames = append(frames, bufs[i][:sizes[i]])
		}
		if len(frames) > 0 {
			d.port.SendFrames(frames)
		}
	}
}

// Oversize is how many frames were dropped for not fitting.
func (d *Device) Oversize() uint64 { return d.oversize.Load() }

// Name is the device's name.
func (d *Device) Name() string { return d.dev.Name() }

func (d *Device) close() error {
	err := d.dev.Close()
	d.wg.Wait()
	return err
}
