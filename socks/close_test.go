package socks

import (
	"context"
	"net"
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
