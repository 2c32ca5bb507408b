package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"geneve64/geneve"
	"geneve64/nat64"
	"geneve64/nat64/udpbatch"
)

// udpFlood sends datagrams of size bytes from src to dst at rate per
// second for a duration, in batches, paced against the clock, and says
// how many it sent. With option endpoints, each is a GENEVE packet whose
// NAT64 option names them, as a tunnel endpoint's would be.
// Arguments: SRC DST RATE DURATION SIZE [OPTSRC OPTDST].
func udpFlood(args []string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "udp-flood:", err)
		os.Exit(1)
	}
	if len(args) != 5 && len(args) != 7 {
		fail(fmt.Errorf("want SRC DST RATE DURATION SIZE [OPTSRC OPTDST], got %q", args))
	}
	src, err1 := netip.ParseAddrPort(args[0])
	dst, err2 := netip.ParseAddrPort(args[1])
	rate, err3 := strconv.Atoi(args[2])
	d, err4 := time.ParseDuration(args[3])
	size, err5 := strconv.Atoi(args[4])
	for _, err := range []error{err1, err2, err3, err4, err5} {
		if err != nil {
			fail(err)
		}
	}
	pkt := make([]byte, 0, size)
	if len(args) == 7 {
		opt, err := nat64.AppendOption(nil, nat64.Endpoints{Src: netip.MustParseAddr(args[5]), Dst: netip.MustParseAddr(args[6])})
		if err != nil {
			fail(err)
		}
		pkt, _ = (&geneve.Header{Protocol: geneve.ProtocolEthernet, VNI: 42, OptionBytes: opt}).Append(pkt)
	}
	pkt = pkt[:size]
	c, err := udpbatch.ListenConfig{NoGSO: true}.Listen(src)
	if err != nil {
		fail(err)
	}
	// The load is many datagrams of one size, as a busy tunnel's, never
	// a UDP GSO packet crossing the namespaces as one.
	msgs := make([]udpbatch.Message, 32)
	for i := range msgs {
		msgs[i] = udpbatch.Message{Buf: pkt, Addr: dst}
	}
	sent := 0
	begin := time.Now()
	for {
		elapsed := time.Since(begin)
		if elapsed >= d {
			break
		}
		due := int(float64(rate) * elapsed.Seconds())
		if sent >= due {
			time.Sleep(50 * time.Microsecond)
			continue
		}
		n, _ := c.WriteBatch(msgs[:min(len(msgs), due-sent)])
		sent += n
	}
	fmt.Printf("sent %d in %v\n", sent, time.Since(begin).Round(time.Millisecond))
	os.Exit(0)
}

// udpCount counts datagrams to addr until SIGTERM, then says how many
// and from where the first came.
func udpCount(addr string) {
	c, err := udpbatch.ListenUDP(netip.MustParseAddrPort(addr))
	if err != nil {
		fmt.Fprintln(os.Stderr, "udp-count:", err)
		os.Exit(1)
	}
	var n atomic.Int64
	var first atomic.Value
	go func() {
		msgs := make([]udpbatch.Message, 64)
		for i := range msgs {
			msgs[i].Buf = make([]byte, 2048)
		}
		for {
			k, err := c.ReadBatch(msgs)
			if err != nil {
				return
			}
			if n.Add(int64(k)) == int64(k) {
				first.Store(msgs[0].Addr.String())
				fmt.Println("first from", msgs[0].Addr)
			}
			for i := range msgs {
				msgs[i].Buf = msgs[i].Buf[:cap(msgs[i].Buf)]
			}
		}
	}()
	fmt.Println("listening", c.LocalAddr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	fmt.Printf("count %d drops %d\n", n.Load(), c.(*udpbatch.UDPConn).Drops())
	os.Exit(0)
}
