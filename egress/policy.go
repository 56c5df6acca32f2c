package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Policy decides whether a host:port may be reached.
//
// Entries:
//
//	host            host, ports 80 and 443
//	host:port       host, that port
//	host:*          host, any port
//	*.domain        any subdomain of domain (not domain itself), ports 80 and 443
//	*.domain:port   any subdomain of domain, that port
//	*.domain:*      any subdomain of domain, any port
//
// host may be an IP literal (IPv6 in brackets when a port follows). Matching
// is case-insensitive (ASCII only: a name with any other byte matches
// nothing) and ignores a trailing dot. An IP-literal target is denied unless
// an entry names that literal IP exactly: wildcards match names only. A
// Policy is safe for concurrent use.
//
// A CONNECT tunnel is decided by DecideTunnel, more narrowly: see there.
type Policy struct {
	rules []rule
	block []rule // checked first; an entry without a port blocks every port
}

// rule is one parsed allowlist entry.
type rule struct {
	entry    string     // as written: reported as the rule that decided
	name     string     // host name; for a wildcard, the domain after "*."
	wildcard bool       // name is a domain whose subdomains match
	ip       netip.Addr // valid when the entry names an IP literal
	port     int        // a port, webPorts or anyPort
}

// Sentinel values of rule.port.
const (
	webPorts = 0  // 80 and 443: what an entry without a port means
	anyPort  = -1 // written "*"
)

// NewPolicy parses allow. An empty list denies everything.
func NewPolicy(allow []string) (*Policy, error) {
	p := &Policy{rules: make([]rule, 0, len(allow))}
	for _, entry := range allow {
		r, err := parseEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("egress: allow entry %q: %w", entry, err)
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// Block adds blocklist entries, in the allowlist's forms: a target they
// match is refused even when an allowlist entry matches it. An entry without
// a port blocks every port of its host.
func (p *Policy) Block(entries []string) error {
	for _, entry := range entries {
		r, err := parseEntry(entry)
		if err != nil {
			return fmt.Errorf("egress: block entry %q: %w", entry, err)
		}
		if r.port == webPorts {
			r.port = anyPort
		}
		p.block = append(p.block, r)
	}
	return nil
}

// Decide returns whether a plain HTTP request to host:port is allowed and
// the rule that decided: the first matching entry as written, "block:ENTRY"
// for a blocklist entry, or "default-deny".
func (p *Policy) Decide(host string, port int) (allowed bool, rule string) {
	allowed, rule, _ = p.decide(host, port, false)
	return allowed, rule
}

// DecideTunnel decides a CONNECT tunnel to host:port. A tunnel carries
// bytes the proxy cannot read, so it is opened only to port 443 of an entry
// without a port, to any port of an entry with "*", and to a port an entry
// names. tlsOnly reports that no entry named the port: then the tunnel must
// carry TLS to host, which the proxy checks in its ClientHello. Port 80 of
// an entry without a port is for plain HTTP requests, which DLP reads, not
// for tunnels.
func (p *Policy) DecideTunnel(host string, port int) (allowed bool, rule string, tlsOnly bool) {
	return p.decide(host, port, true)
}

func (p *Policy) decide(host string, port int, tunnel bool) (allowed bool, decidedBy string, tlsOnly bool) {
	if port < 1 || port > 65535 {
		return false, ruleDefaultDeny, false
	}
	host = normalizeHost(host)
	ip, err := netip.ParseAddr(host)
	literal := err == nil
	if literal && ip.Zone() != "" {
		// No entry names a zone; and the SSRF guard's ranges would not
		// hold a zoned address (netip.Prefix.Contains refuses it).
		return false, ruleDefaultDeny, false
	}
	for _, r := range p.block {
		matches := r.matchesAddr(ip)
		if !literal {
			matches = r.matchesName(host)
		}
		if matches && r.matchesPort(port) {
			return false, "block:" + r.entry, false
		}
	}
	if !literal && !validName(host) {
		return false, ruleDefaultDeny, false
	}
	matches := func(r rule) bool {
		if literal {
			return r.ip.IsValid() && r.ip == ip
		}
		return r.matchesName(host)
	}
	if !tunnel {
		for _, r := range p.rules {
			if matches(r) && r.matchesPort(port) {
				return true, r.entry, false
			}
		}
		return false, ruleDefaultDeny, false
	}
	// An entry that names the port wins over one that admits it only
	// implicitly, wherever it stands in the list: it is what lets SSH or
	// another protocol through.
	for _, r := range p.rules {
		if matches(r) && r.port == port {
			return true, r.entry, false
		}
	}
	for _, r := range p.rules {
		if matches(r) && (r.port == anyPort || r.port == webPorts && port == 443) {
			return true, r.entry, true
		}
	}
	return false, ruleDefaultDeny, false
}

// BlockedAddr returns the blocklist entry that blocks addr:port, if any. The
// proxy checks it against every address it is about to dial, so a name that
// resolves to a blocked address is refused like the address itself.
func (p *Policy) BlockedAddr(addr netip.Addr, port int) (entry string, blocked bool) {
	for _, r := range p.block {
		if r.matchesAddr(addr) && r.matchesPort(port) {
			return r.entry, true
		}
	}
	return "", false
}

// matchesAddr compares addresses as the host they reach: an IPv6 form that
// carries an IPv4 address (mapped, NAT64, 6to4) is that IPv4 address, and a
// zone does not make another host.
func (r rule) matchesAddr(addr netip.Addr) bool {
	return r.ip.IsValid() && addr.IsValid() && reachedAddr(r.ip) == reachedAddr(addr)
}

func (r rule) matchesName(host string) bool {
	if r.ip.IsValid() {
		return false
	}
	if r.wildcard {
		return strings.HasSuffix(host, "."+r.name)
	}
	return host == r.name
}

func (r rule) matchesPort(port int) bool {
	switch r.port {
	case anyPort:
		return true
	case webPorts:
		return port == 80 || port == 443
	default:
		return port == r.port
	}
}

func parseEntry(entry string) (rule, error) {
	r := rule{entry: entry}
	if entry == "" {
		return r, errors.New("empty")
	}
	if strings.Contains(entry, "://") {
		return r, errors.New("has a scheme; write host or host:port")
	}
	if strings.ContainsAny(entry, "/?#@") {
		return r, errors.New("has a path, query or user; write host or host:port")
	}
	host, port, bracketed, err := splitEntry(entry)
	if err != nil {
		return r, err
	}
	switch port {
	case "":
		r.port = webPorts
	case "*":
		r.port = anyPort
	default:
		if r.port, err = parsePort(port); err != nil {
			return r, err
		}
	}
	host = normalizeHost(host)
	if ip, err := netip.ParseAddr(host); err == nil {
		if bracketed && !ip.Is6() {
			return r, errors.New("brackets belong around IPv6 addresses only")
		}
		if ip.Unmap().IsUnspecified() {
			return r, errors.New("the unspecified address reaches the sidecar itself, not a host")
		}
		if ip.Zone() != "" {
			return r, errors.New("an IPv6 zone names one of the sidecar's interfaces, not a host")
		}
		r.ip = ip
		return r, nil
	}
	if bracketed {
		return r, fmt.Errorf("%q is not an IPv6 address", host)
	}
	if host == "*" {
		return r, errors.New(`"*" alone would allow every host; name the hosts`)
	}
	if domain, ok := strings.CutPrefix(host, "*."); ok {
		r.name, r.wildcard = domain, true
	} else {
		r.name = host
	}
	if strings.Contains(r.name, "*") {
		return r, errors.New(`"*" may only be the whole first label, as in "*.example.com"`)
	}
	if !validName(r.name) {
		return r, fmt.Errorf("%q is not a host name or IP address", r.name)
	}
	return r, nil
}

// splitEntry splits an entry into host and port ("" when absent). An IPv6
// literal needs brackets to carry a port; a bare one has none.
func splitEntry(entry string) (host, port string, bracketed bool, err error) {
	if rest, ok := strings.CutPrefix(entry, "["); ok {
		host, rest, ok = strings.Cut(rest, "]")
		if !ok {
			return "", "", false, errors.New(`missing "]"`)
		}
		if rest == "" {
			return host, "", true, nil
		}
		port, ok = strings.CutPrefix(rest, ":")
		if !ok || port == "" {
			return "", "", false, errors.New(`expected ":port" after "]"`)
		}
		return host, port, true, nil
	}
	switch strings.Count(entry, ":") {
	case 0:
		return entry, "", false, nil
	case 1:
		host, port, _ = strings.Cut(entry, ":")
		if port == "" {
			return "", "", false, errors.New(`expected a port after ":"`)
		}
		return host, port, false, nil
	default:
		return entry, "", false, nil
	}
}

// parsePort accepts only the canonical decimal form of 1..65535, so that
// "+80", "080" or " 80" cannot mean something different to the policy and
// to the dialer.
func parsePort(s string) (int, error) {
	bad := fmt.Errorf("bad port %q", s)
	if s == "" || len(s) > 5 || s[0] == '0' {
		return 0, bad
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, bad
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 65535 {
		return 0, bad
	}
	return n, nil
}

// normalizeHost is the form hosts are compared, audited and dialled in. It
// folds ASCII letters only: strings.ToLower would turn the Kelvin sign into
// "k", so "\u212aey.test" would be decided as key.test and then sent
// upstream as its punycode, another name. A name with a byte outside ASCII
// stays as it is and is no valid name. It is idempotent, as the proxy and
// the policy each apply it: one trailing dot goes, two stay (and make no
// valid name), or "a.test.." would be looked up as "a.test." and decided
// as "a.test".
func normalizeHost(host string) string {
	if !strings.HasSuffix(host, "..") {
		host = strings.TrimSuffix(host, ".")
	}
	b := []byte(host)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// validName reports whether host (normalized) is a DNS host name. A name
// whose last label reads as a number is refused: resolvers take "127.1",
// "2130706433" or "0x7f.0.0.1" as IP addresses, which would let a name
// entry or wildcard reach an address that no entry names.
func validName(host string) bool {
	if host == "" || len(host) > 253 {
		return false
	}
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, c := range l {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return !numeric(labels[len(labels)-1])
}

// numeric reports whether label is a number as inet_aton reads one:
// decimal, octal, or hexadecimal after "0x".
func numeric(label string) bool {
	digits, base := label, "0123456789"
	if rest, ok := strings.CutPrefix(label, "0x"); ok {
		digits, base = rest, "0123456789abcdef"
	}
	for _, c := range digits {
		if !strings.ContainsRune(base, c) {
			return false
		}
	}
	return true
}

// compilePolicy parses a whole policy: the allowlist allow and the blocklist
// block.
func compilePolicy(allow, block []string) (*Policy, error) {
	p, err := NewPolicy(allow)
	if err != nil {
		return nil, err
	}
	if err := p.Block(block); err != nil {
		return nil, err
	}
	return p, nil
}

// entries returns the allowlist and the blocklist as written.
func (p *Policy) entries() (allow, block []string) {
	for _, r := range p.rules {
		allow = append(allow, r.entry)
	}
	for _, r := range p.block {
		block = append(block, r.entry)
	}
	return allow, block
}
