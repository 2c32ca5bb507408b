package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestHelperProcess is not a test: the kernel tests run this test binary
// inside network namespaces as a small HTTP server, so the far hosts there
// need nothing installed. GENEVE64_HELPER="http ADDR" selects it, and
// "udp-sink ADDR" a UDP socket that says what it receives; "udp-flood" and
// "udp-count" are the load of the gateway's rate measurement (flood_test.go).
func TestHelperProcess(t *testing.T) {
	spec := os.Getenv("GENEVE64_HELPER")
	if spec == "" {
		t.Skip("helper process for the kernel tests")
	}
	kind, addr, _ := strings.Cut(spec, " ")
	switch kind {
	case "udp-sink":
		udpSink(addr)
	case "udp-flood":
		udpFlood(strings.Fields(addr))
	case "udp-count":
		udpCount(addr)
	}
	if kind != "http" {
		fmt.Fprintln(os.Stderr, "unknown helper", kind)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening", ln.Addr())
	http.Serve(ln, helperMux())
	os.Exit(0)
}

// helperMux serves the same paths as startFarHost.
func helperMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		seed, _ := strconv.ParseUint(r.URL.Query().Get("seed"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		stream(w, seed, n)
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		io.Copy(h, r.Body)
		fmt.Fprint(w, hex.EncodeToString(h.Sum(nil)))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from the far side\n") })
	return mux
}

// udpSink prints a line for every datagram that reaches addr, then exits
// when its input closes.
func udpSink(addr string) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening", pc.LocalAddr())
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			os.Exit(0)
		}
		fmt.Printf("received %d bytes from %s: %q\n", n, from, buf[:n])
	}
}

// helperExe is this test binary, which TestHelperProcess turns into a helper.
func helperExe(t testing.TB) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}
