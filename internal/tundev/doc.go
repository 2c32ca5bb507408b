// Package tundev opens Linux TUN and TAP devices and moves packets through
// them in batches: as many as are queued per wake-up of the poller, since
// the kernel gives one packet per read(2).
//
// It is its own package because two parts of geneve64 attach to kernel
// devices and neither may import the other: the NAT64 gateway (a TUN for
// its IPv6 side) and an endpoint joining a site's network (--tap, --tun).
// A device made once by root for a user (ip tuntap add ... user UID)
// needs no capability to attach to; otherwise attaching needs
// CAP_NET_ADMIN, and the errors say exactly that.
package tundev
