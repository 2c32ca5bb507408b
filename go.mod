module geneve64

go 1.26.3

require (
	github.com/gopacket/gopacket v1.7.7
	golang.org/x/net v0.62.0
	gvisor.dev/gvisor v0.0.0-20260701204157-69c2d17aea96
)

require (
	github.com/google/btree v1.1.2 // indirect
	github.com/things-go/go-socks5 v0.1.0 // indirect
	golang.org/x/exp v0.0.0-20250711185948-6ae5c78190dc // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)
