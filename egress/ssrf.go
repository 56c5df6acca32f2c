package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Trust is the SSRF guard's exception list: the hosts that may resolve to
// addresses that are not public (private, loopback, link-local, shared,
// multicast, reserved), and address ranges that are trusted whatever name
// leads to them.
//
// Entries:
//
//	host        that name
//	*.domain    any subdomain of domain (not domain itself)
//	IP          that address
//	CIDR        any address in that range, like 10.20.0.0/16
//
// Without an entry, an allowlisted name that resolves to such an address is
// refused: an allowlist names hosts on the internet, and a name that points
// into the sidecar's own networks, the host or the cloud's metadata service
// is the classic way to turn a proxy against its own side (SSRF). An
// allowlist entry that names an IP literal is explicit about its address and
// needs no trust entry.
type Trust struct {
	names    []string // exact names
	suffixes []string // ".domain" of wildcards
	prefixes []netip.Prefix
}

// NewTrust parses trust entries.
func NewTrust(entries []string) (*Trust, error) {
	t := &Trust{}
	for _, entry := range entries {
		if err := t.add(entry); err != nil {
			return nil, fmt.Errorf("egress: trusted entry %q: %w", entry, err)
		}
	}
	return t, nil
}

func (t *Trust) add(entry string) error {
	e := normalizeHost(strings.TrimSpace(entry))
	if e == "" {
		return errors.New("empty")
	}
	if strings.Contains(e, "/") {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return errors.New("not a CIDR range like 10.0.0.0/8")
		}
		t.prefixes = append(t.prefixes, p.Masked())
		return nil
	}
	if ip, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
		t.prefixes = append(t.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
		return nil
	}
	if strings.Contains(e, ":") {
		return errors.New("a trusted host has no port: trust applies to the host on every port the allowlist opens")
	}
	if domain, ok := strings.CutPrefix(e, "*."); ok {
		if !validName(domain) {
			return fmt.Errorf("%q is not a host name", domain)
		}
		t.suffixes = append(t.suffixes, "."+domain)
		return nil
	}
	if !validName(e) {
		return fmt.Errorf("%q is not a host name, IP address or CIDR range", e)
	}
	t.names = append(t.names, e)
	return nil
}

// Host reports whether host (normalized) is trusted by name.
func (t *Trust) Host(host string) bool {
	if t == nil {
		return false
	}
	for _, n := range t.names {
		if host == n {
			return true
		}
	}
	for _, s := range t.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// Addr reports whether addr lies in a trusted range.
func (t *Trust) Addr(addr netip.Addr) bool {
	if t == nil {
		return false
	}
	addr = addr.WithZone("").Unmap()
	for _, p := range t.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// nonPublic are the ranges the SSRF guard refuses besides those netip
// classifies (loopback, private, link-local, multicast, unspecified):
// addresses no public host has, so a name that resolves to one is a trick.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (carrier-grade NAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation (TEST-NET-1)
	netip.MustParsePrefix("192.88.99.0/24"),  // deprecated 6to4 relay anycast
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation (TEST-NET-2)
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation (TEST-NET-3)
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the broadcast address
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use IPv4/IPv6 translation
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:2::/48"),     // benchmarking
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("3fff::/20"),       // documentation
	netip.MustParsePrefix("5f00::/16"),       // SRv6 SIDs
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
	netip.MustParsePrefix("::/96"),           // deprecated IPv4-compatible
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated (SIIT): a translator's, not a host's
	netip.MustParsePrefix("2001::/32"),       // Teredo: tunnels to an embedded IPv4 address
	netip.MustParsePrefix("2001:10::/28"),    // ORCHID
	netip.MustParsePrefix("2001:20::/28"),    // ORCHIDv2
	netip.MustParsePrefix("ff00::/8"),        // multicast
	netip.MustParsePrefix("fe80::/10"),       // link-local
	netip.MustParsePrefix("fc00::/7"),        // unique local
	netip.MustParsePrefix("::1/128"),         // loopback
	netip.MustParsePrefix("::/128"),          // unspecified
	netip.MustParsePrefix("169.254.0.0/16"),  // link-local, cloud metadata
	netip.MustParsePrefix("127.0.0.0/8"),     // loopback
	netip.MustParsePrefix("255.255.255.255/32"),
}

// IPv6 prefixes that carry an IPv4 address.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// reachedAddr is the address addr reaches, as the blocklist and the SSRF
// guard judge it: without a zone (netip.Prefix.Contains is false for every
// zoned address, so a zone would slip past every range), and an IPv4 address
// carried in an IPv6 form (mapped, NAT64, 6to4) as that IPv4 address.
func reachedAddr(addr netip.Addr) netip.Addr {
	addr = addr.WithZone("").Unmap()
	if addr.Is6() {
		b := addr.As16()
		switch {
		case nat64.Contains(addr):
			return netip.AddrFrom4([4]byte(b[12:16]))
		case sixToFour.Contains(addr):
			return netip.AddrFrom4([4]byte(b[2:6]))
		}
	}
	return addr
}

// publicAddr reports whether addr is an ordinary public unicast address,
// and when it is not, what it is. It judges the address addr reaches (see
// reachedAddr).
func publicAddr(addr netip.Addr) (bool, string) {
	if !addr.IsValid() {
		return false, "invalid"
	}
	addr = reachedAddr(addr)
	switch {
	case addr.IsLoopback():
		return false, "loopback"
	case addr.IsLinkLocalUnicast():
		return false, "link-local"
	case addr.IsPrivate():
		return false, "private"
	case addr.IsMulticast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
		return false, "multicast"
	case addr.IsUnspecified():
		return false, "unspecified"
	}
	for _, p := range nonPublic {
		if p.Contains(addr) {
			return false, "reserved"
		}
	}
	return true, ""
}

// dnsCacheTTL is how long a lookup is reused. Every request still checks
// the addresses it dials; the cache only saves the round trip to the
// resolver, which costs more than everything else the proxy does per
// request. A dial that fails forgets the answer.
const dnsCacheTTL = 5 * time.Second

// dnsCache holds recent lookups. Its zero value is ready to use.
type dnsCache struct {
	mu      sync.Mutex
	entries map[string]dnsEntry
}

type dnsEntry struct {
	addrs   []netip.Addr
	expires time.Time
}

func (c *dnsCache) get(host string) ([]netip.Addr, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[host]
	if !ok || time.Now().After(e.expires) {
		return nil, false
	}
	return e.addrs, true
}

func (c *dnsCache) put(host string, addrs []netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) > 4096 {
		c.entries = map[string]dnsEntry{} // a crude bound: start over
	}
	c.entries[host] = dnsEntry{addrs: addrs, expires: time.Now().Add(dnsCacheTTL)}
}

func (c *dnsCache) forget(host string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, host)
}

// Resolver looks names up; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// errNotPublic is a refusal of the SSRF guard.
type errNotPublic struct {
	host string
	addr netip.Addr
	kind string
}

func (e *errNotPublic) Error() string {
	if e.kind == "unspecified" || e.kind == "invalid" {
		return fmt.Sprintf("%s resolves to %s address %s, which is never dialled", e.host, e.kind, e.addr)
	}
	return fmt.Sprintf("%s resolves to %s address %s; trust the host (egress.trusted) if it is meant to be reached", e.host, e.kind, e.addr)
}

// ruleNotPublic is the audit rule of an SSRF refusal.
const ruleNotPublic = "ssrf-guard"

// resolve returns the addresses host stands for: an IP literal itself
// (the policy only admits one that an allowlist entry names exactly), a name
// what the resolver answers, reused for dnsCacheTTL.
func (p *Proxy) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	if addrs, ok := p.dns.get(host); ok {
		return addrs, nil
	}
	lctx, cancel := context.WithTimeout(ctx, p.dialer.Timeout)
	defer cancel()
	addrs, err := p.resolver.LookupNetIP(lctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", host, unwrapDNS(err))
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("lookup %s: no addresses", host)
	}
	p.dns.put(host, addrs)
	return addrs, nil
}

// checkPublic refuses (*errNotPublic) a name with any address that is not
// public, unless the name or that address is trusted: a name with one
// private address among public ones is a rebinding trick, not a reason to
// pick the public one. An IP literal that an allowlist entry names
// (literalNamed) is explicit and needs no trust. No
// trust and no entry makes an unspecified or invalid address dialable: the
// kernel takes 0.0.0.0 and :: for the sidecar's own addresses.
func (p *Proxy) checkPublic(host string, addrs []netip.Addr, literalNamed bool) error {
	exempt := literalNamed && isIP(host) || p.trust.Host(host)
	for _, a := range addrs {
		ok, kind := publicAddr(a)
		if kind == "unspecified" || kind == "invalid" || !ok && !exempt && !p.trust.Addr(a) {
			return &errNotPublic{host: host, addr: a.Unmap(), kind: kind}
		}
	}
	return nil
}

func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

func unwrapDNS(err error) error {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return errors.New(dnsErr.Err)
	}
	return err
}

// dialAddrs dials the checked addresses in turn until one answers, all
// within the proxy's dial timeout.
func (p *Proxy) dialAddrs(ctx context.Context, addrs []netip.Addr, port int) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.dialer.Timeout)
	defer cancel()
	var errs []error
	for _, a := range addrs {
		// The checked address itself, not its text: nothing is looked up.
		c, err := p.dialer.DialTCP(ctx, "tcp", netip.AddrPort{}, netip.AddrPortFrom(a.Unmap(), uint16(port)))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, errors.Join(errs...)
}

// checkedKey carries the checked addresses of a forwarded request from its
// decision to the transport's dial.
type checkedKey struct{}

type checked struct {
	addrs []netip.Addr
	port  int
}

// dialChecked is the forwarding transport's dial: it connects only to the
// addresses the SSRF guard checked for this request, never to what a second
// lookup of the name might return.
func (p *Proxy) dialChecked(ctx context.Context, _, _ string) (net.Conn, error) {
	c, ok := ctx.Value(checkedKey{}).(checked)
	if !ok {
		return nil, errors.New("internal error: no checked addresses for this request")
	}
	return p.dialAddrs(ctx, c.addrs, c.port)
}
