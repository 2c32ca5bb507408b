package socks

import (
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"geneve64/internal/testpeer"
)

// rssBytes is this process's resident set (Linux; else 0).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// TestUDPAssociationsBounded: 64 associations naming 256 targets each
// took a client from 58 to 421 MB (a socket, a goroutine and a 64 KiB
// buffer per target). An association now keeps one socket inside the
// tunnel for all its targets: the same load must stay within a few tens
// of MB, and associations past MaxUDPAssociations are refused.
func TestUDPAssociationsBounded(t *testing.T) {
	if runtime.GOOS != "linux" || raceEnabled {
		t.Skip("RSS is read from /proc, and the race detector inflates it")
	}
	echo := testpeer.UDPUpper(t)
	s, err := Listen(&hostNetwork{}, Config{Addr: "127.0.0.1:0", MaxUDPAssociations: 64, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runtime.GC()
	before := rssBytes()
	var us []*socksUDP
	for range 64 {
		us = append(us, associate(t, s.Addr().String()))
	}
	// 256 targets each: the echo, whose answer proves the association
	// works, and 255 sockets of the test's that take datagrams silently.
	var sinks []netip.AddrPort
	for range 255 {
		pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		sinks = append(sinks, pc.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	for i, u := range us {
		u.send(t, echo, "ping")
		if from, got := u.recv(t); from != echo || got != "PING" {
			t.Fatalf("association %d: %q from %s", i, got, from)
		}
		for p, sink := range sinks {
			u.send(t, sink, "x")
			if p%32 == 31 {
				time.Sleep(time.Millisecond) // within the relay socket's buffer
			}
		}
	}
	runtime.GC()
	grew := rssBytes() - before
	t.Logf("64 associations x 256 targets: RSS grew %.1f MB", float64(grew)/(1<<20))
	if grew > 48<<20 {
		t.Fatalf("RSS grew %d MB", grew>>20)
	}
	// The 65th association is refused.
	ctrl, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	ctrl.SetReadDeadline(time.Now().Add(5 * time.Second))
	ctrl.Write([]byte{5, 1, 0})
	var greeting [2]byte
	io.ReadFull(ctrl, greeting[:])
	ctrl.Write([]byte{5, 3, 0, 1, 0, 0, 0, 0, 0, 0})
	var rep [2]byte
	if _, err := io.ReadFull(ctrl, rep[:]); err != nil || rep[1] == 0 {
		t.Fatalf("the 65th association: reply %x %v, want a failure", rep, err)
	}
}

// TestUDPAssociationRepliesOnlyFromTargets: the association's one socket
// inside the network relays back datagrams from the hosts its client
// sent to, and drops those of a stranger that found its port.
func TestUDPAssociationRepliesOnlyFromTargets(t *testing.T) {
	s, err := Listen(&hostNetwork{}, Config{Addr: "127.0.0.1:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	target, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	u := associate(t, s.Addr().String())
	u.send(t, target.LocalAddr().(*net.UDPAddr).AddrPort(), "hello")
	buf := make([]byte, 64)
	target.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, inner, err := target.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("target got %q %v", buf[:n], err)
	}
	stranger.WriteToUDPAddrPort([]byte("intruder"), inner) // first, so it would arrive first
	time.Sleep(50 * time.Millisecond)
	target.WriteToUDPAddrPort([]byte("reply"), inner)
	if from, got := u.recv(t); got != "reply" || from != target.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("the client got %q from %s first, want the target's reply", got, from)
	}
}
