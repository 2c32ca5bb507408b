package socks

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/proxy"
)

// hangingNetwork is a Network whose dials and look-ups wait until their
// context ends, and say so on entered and cancelled.
type hangingNetwork struct {
	hostNetwork
	entered, cancelled chan string
}

func (h *hangingNetwork) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	h.entered <- address
	<-ctx.Done()
	h.cancelled <- address
	return nil, ctx.Err()
}

// TestCloseCancelsDials: a SOCKS5 CONNECT and a forward's connection whose
// dials hang do not hold Close for the dials' 30 s timeout: Close cancels
// them and returns, also when called twice at once.
func TestCloseCancelsDials(t *testing.T) {
	nw := &hangingNetwork{entered: make(chan string, 4), cancelled: make(chan string, 4)}
	srv, err := Listen(nw, Config{Addr: "127.0.0.1:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	fw, err := StartForward(nw, Forward{Proto: "tcp", Listen: "127.0.0.1:0", Target: "10.0.0.1:80"}, 0, quiet())
	if err != nil {
		t.Fatal(err)
	}
	d, _ := proxy.SOCKS5("tcp", srv.Addr().String(), nil, proxy.Direct)
	go d.Dial("tcp", "10.0.0.2:80")
	c, err := net.Dial("tcp", fw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 {
		select {
		case <-nw.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the dials never started")
		}
	}
	closed := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, f := range []func() error{srv.Close, srv.Close, fw.Close, fw.Close} {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		}
		wg.Wait()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the hanging dials")
	}
	for range 2 {
		select {
		case <-nw.cancelled:
		default:
			t.Fatal("a dial was not cancelled")
		}
	}
}

// TestSilentClientsLockNobodyOut: with MaxConns 10, twice as many
// connections that never send a byte used to hold every slot for as long
// as they liked. Now they wait in their handshake, which has a deadline
// and a bound of its own whose oldest member makes room for a newcomer:
// a real client still gets through, and the silent ones are closed once
// their deadline passes.
func TestSilentClientsLockNobodyOut(t *testing.T) {
	echo := upperServer(t)
	srv, err := Listen(&hostNetwork{}, Config{Addr: "127.0.0.1:0", MaxConns: 10, MaxHandshakes: 8,
		HandshakeTimeout: 500 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var silent []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	d, _ := proxy.SOCKS5("tcp", srv.Addr().String(), nil, proxy.Direct)
	c, err := d.Dial("tcp", echo.Addr().String())
	if err != nil {
		t.Fatalf("a real client beside 20 silent connections: %v", err)
	}
	c.Write([]byte("hello"))
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "HELLO" {
		t.Fatalf("echo: %q", got)
	}
	// Every silent connection is closed by the server: evicted for the
	// newer ones, or at its deadline.
	for i, s := range silent {
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("silent connection %d still open after its handshake deadline: %v", i, err)
		}
	}
	waitFor(t, func() bool { p, e := srv.hs.counts(); return p == 0 && e == 0 })
}

// TestMaxConnsCountsEstablished: the limit applies to clients past their
// handshake; one more gets a general failure, and a slot freed is taken.
func TestMaxConnsCountsEstablished(t *testing.T) {
	echo := upperServer(t)
	srv, err := Listen(&hostNetwork{}, Config{Addr: "127.0.0.1:0", MaxConns: 2, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	d, _ := proxy.SOCKS5("tcp", srv.Addr().String(), nil, proxy.Direct)
	a, err1 := d.Dial("tcp", echo.Addr().String())
	b, err2 := d.Dial("tcp", echo.Addr().String())
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if c, err := d.Dial("tcp", echo.Addr().String()); err == nil {
		c.Close()
		t.Fatal("a third connection past MaxConns 2")
	}
	a.Close()
	b.Close()
	waitFor(t, func() bool { _, e := srv.hs.counts(); return e == 0 })
	c, err := d.Dial("tcp", echo.Addr().String())
	if err != nil {
		t.Fatalf("after the others closed: %v", err)
	}
	c.Close()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
