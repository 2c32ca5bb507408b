// Package gateway runs the NAT64 extension's gateway rules (nat64.GatewayRules)
// on real traffic beside an ordinary NAT64 such as TAYGA or Jool. It is a
// sub-package of nat64 because it is Linux-only, privileged packet I/O that
// tunnel endpoints never need.
//
// The IPv6 side is a TUN device: the operator routes GENEVE leaving the site
// (UDP source port 6081, towards the NAT64 prefix) into it with a policy
// rule, and the gateway writes the IPv6 packets it builds for incoming
// traffic back into it. The IPv4 side is an ordinary UDP socket on the
// public address and port 6081. See the README, "Running a gateway".
package gateway
