package socks

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// noNetwork refuses every dial: fuzzed requests must never reach a network.
type noNetwork struct{}

var errNoNetwork = errors.New("no network in fuzzing")

func (noNetwork) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, errNoNetwork
}
func (noNetwork) Listen(string, string) (net.Listener, error)         { return nil, errNoNetwork }
func (noNetwork) ListenPacket(string, string) (net.PacketConn, error) { return nil, errNoNetwork }
func (noNetwork) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return nil, errNoNetwork
}

// FuzzServeConn feeds any bytes to the SOCKS5 server through the library's
// entry point, with and without authentication: it never panics or hangs.
func FuzzServeConn(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 1, 10, 42, 0, 1, 0, 80}, false)
	f.Add([]byte{5, 1, 0, 5, 1, 0, 3, 11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0, 80}, false)
	f.Add([]byte{5, 1, 2, 1, 5, 'a', 'l', 'i', 'c', 'e', 1, 'x', 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 22}, true)
	f.Add([]byte{5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0}, false)
	f.Add([]byte{4, 1, 0, 80, 1, 2, 3, 4, 0}, false)
	f.Fuzz(func(t *testing.T, data []byte, auth bool) {
		cfg := Config{}
		if auth {
			cfg.User, cfg.Pass = "alice", "s3cret"
		}
		s := &Server{cfg: cfg, nw: noNetwork{}, log: quiet(), ctx: context.Background(), hs: newHandshakes(8, time.Second)}
		s.cfg.MaxConns, s.cfg.MaxUDPAssociations = 8, 8
		srv := s.newLibServer()
		client, server := net.Pipe()
		conn := tcpish{server}
		s.hs.start(conn)
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer s.hs.end(conn)
			srv.ServeConn(conn)
		}()
		client.SetDeadline(time.Now().Add(time.Second))
		go func() {
			buf := make([]byte, 512)
			for {
				if _, err := client.Read(buf); err != nil {
					return
				}
			}
		}()
		client.Write(data)
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("ServeConn did not return after the client closed")
		}
	})
}

// tcpish gives a pipe TCP addresses, as the handlers expect of a client.
type tcpish struct{ net.Conn }

func (tcpish) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1080} }
func (tcpish) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }

func FuzzParseForward(f *testing.F) {
	for _, s := range []string{"8080=10.42.0.1:80", "udp/:5353=10.42.0.1:53", "tcp/[::1]:2222=[fd42::1]:22", "10.42.0.2:80=8080", "sctp/1=2:3", "="} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, spec string, reverse bool) {
		fw, err := ParseForward(spec, reverse)
		if err != nil {
			return
		}
		if fw.Proto != "tcp" && fw.Proto != "udp" || fw.Listen == "" || fw.Target == "" {
			t.Fatalf("%q parsed to %+v", spec, fw)
		}
	})
}
