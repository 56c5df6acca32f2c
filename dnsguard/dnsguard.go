// Package dnsguard makes Docker's embedded DNS server unreachable in an
// agent's network namespace. It runs in a one-shot helper from the
// sidecar's image, apart from the egress proxy: the proxy serves, the guard
// changes a route and exits.
package dnsguard

import "net/netip"

// EmbeddedDNS is the address of Docker's embedded DNS server inside every
// container on a user-defined network.
var EmbeddedDNS = netip.MustParseAddr("127.0.0.11")

// BlockedLine is the line the guard prints once the route is in place.
const BlockedLine = "embedded DNS blocked"
