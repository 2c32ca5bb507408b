// Package nat64 is everything geneve64 needs to cross NAT64: RFC 6052
// address synthesis, RFC 7050 prefix discovery, the GENEVE NAT64 extension
// option that names the IPv6 tunnel endpoints, the outer UDP transport of a
// tunnel endpoint in its modes, and the extension's gateway rules.
//
// It builds on package geneve for the wire format and knows nothing of what
// the tunnel carries: inner frames are handed over as bytes.
package nat64
