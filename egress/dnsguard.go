package egress

import "net/netip"

// EmbeddedDNS is the address of Docker's embedded DNS server inside every
// container on a user-defined network.
var EmbeddedDNS = netip.MustParseAddr("127.0.0.11")

// EmbeddedDNSBlocked is the line the DNS guard prints once the route is in
// place.
const EmbeddedDNSBlocked = "embedded DNS blocked"
