package egress

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestDecideMatchesEachEntryForm(t *testing.T) {
	tests := []struct {
		name    string
		allow   []string
		host    string
		port    int
		allowed bool
		rule    string
	}{
		{"host allows 443", []string{"example.com"}, "example.com", 443, true, "example.com"},
		{"host allows 80", []string{"example.com"}, "example.com", 80, true, "example.com"},
		{"host refuses other ports", []string{"example.com"}, "example.com", 8080, false, "default-deny"},
		{"host does not cover subdomains", []string{"example.com"}, "api.example.com", 443, false, "default-deny"},
		{"host does not match a longer name", []string{"example.com"}, "badexample.com", 443, false, "default-deny"},
		{"host:port allows that port", []string{"example.com:8443"}, "example.com", 8443, true, "example.com:8443"},
		{"host:port refuses 443", []string{"example.com:8443"}, "example.com", 443, false, "default-deny"},
		{"host:* allows any port", []string{"example.com:*"}, "example.com", 22, true, "example.com:*"},
		{"wildcard allows a subdomain", []string{"*.example.com"}, "api.example.com", 443, true, "*.example.com"},
		{"wildcard allows a deeper subdomain", []string{"*.example.com"}, "a.b.example.com", 80, true, "*.example.com"},
		{"wildcard does not allow the bare domain", []string{"*.example.com"}, "example.com", 443, false, "default-deny"},
		{"wildcard respects label boundaries", []string{"*.example.com"}, "apiexample.com", 443, false, "default-deny"},
		{"wildcard refuses other ports", []string{"*.example.com"}, "api.example.com", 22, false, "default-deny"},
		{"wildcard:port allows that port", []string{"*.example.com:8443"}, "api.example.com", 8443, true, "*.example.com:8443"},
		{"wildcard:port refuses 443", []string{"*.example.com:8443"}, "api.example.com", 443, false, "default-deny"},
		{"wildcard:* allows any port", []string{"*.example.com:*"}, "api.example.com", 9, true, "*.example.com:*"},
		{"target case is ignored", []string{"example.com"}, "EXAMPLE.Com", 443, true, "example.com"},
		{"entry case is ignored, rule is reported as written", []string{"*.Example.COM"}, "api.example.com", 443, true, "*.Example.COM"},
		{"target trailing dot is ignored", []string{"example.com"}, "example.com.", 443, true, "example.com"},
		{"entry trailing dot is ignored", []string{"example.com.:443"}, "example.com", 443, true, "example.com.:443"},
		{"two trailing dots are not a name", []string{"example.com"}, "example.com..", 443, false, "default-deny"},
		{"first matching entry decides", []string{"*.example.com", "api.example.com:*"}, "api.example.com", 443, true, "*.example.com"},
		{"later entry matches when the first does not", []string{"*.example.com", "api.example.com:*"}, "api.example.com", 22, true, "api.example.com:*"},
		{"empty allowlist denies", nil, "example.com", 443, false, "default-deny"},
		{"port 0 is denied", []string{"example.com:*"}, "example.com", 0, false, "default-deny"},
		{"port above 65535 is denied", []string{"example.com:*"}, "example.com", 65536, false, "default-deny"},
		{"IPv4 literal named exactly", []string{"127.0.0.1:8080"}, "127.0.0.1", 8080, true, "127.0.0.1:8080"},
		{"IPv4 literal without port means web ports", []string{"10.0.0.1"}, "10.0.0.1", 443, true, "10.0.0.1"},
		{"IPv4 literal on another port", []string{"127.0.0.1:8080"}, "127.0.0.1", 8081, false, "default-deny"},
		{"IPv4 literal not named", []string{"127.0.0.1:*"}, "127.0.0.2", 80, false, "default-deny"},
		{"wildcard never matches an IP literal", []string{"*.0.0.example.com:*", "*.example.com:*"}, "10.0.0.1", 80, false, "default-deny"},
		{"IPv6 literal in brackets", []string{"[::1]:8080"}, "::1", 8080, true, "[::1]:8080"},
		{"IPv6 literal bare", []string{"::1"}, "::1", 443, true, "::1"},
		{"IPv6 literal in another spelling", []string{"[::1]:*"}, "0:0:0:0:0:0:0:1", 22, true, "[::1]:*"},
		{"IPv4-mapped IPv6 is not the IPv4 address", []string{"127.0.0.1:*"}, "::ffff:127.0.0.1", 80, false, "default-deny"},
		{"numeric spelling of an IP is not a name", []string{"*.0.1.com"}, "2130706433", 80, false, "default-deny"},
		{"short IPv4 spelling is not a name", []string{"*.example.com"}, "127.1", 80, false, "default-deny"},
		{"hex IPv4 spelling is not a name", []string{"*.example.com"}, "0x7f.example.com.0x1", 80, false, "default-deny"},
		{"name with odd characters is denied", []string{"*.example.com"}, "a b.example.com", 443, false, "default-deny"},
		{"empty host is denied", []string{"*.example.com"}, "", 443, false, "default-deny"},
		{"single-label name", []string{"upstream:8080"}, "upstream", 8080, true, "upstream:8080"},
		{"hex-looking label that is a name", []string{"3f2a9b:80"}, "3f2a9b", 80, true, "3f2a9b:80"},
		{"Kelvin sign is not the letter k", []string{"key.test:*"}, "\u212aey.test", 443, false, "default-deny"},
		{"non-ASCII name is denied", []string{"*.test:*"}, "b\u00fccher.test", 443, false, "default-deny"},
		{"its punycode is a name", []string{"*.test:*"}, "xn--bcher-kva.test", 443, true, "*.test:*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPolicy(tt.allow)
			if err != nil {
				t.Fatalf("NewPolicy(%q): %v", tt.allow, err)
			}
			allowed, rule := p.Decide(tt.host, tt.port)
			if allowed != tt.allowed || rule != tt.rule {
				t.Errorf("Decide(%q, %d) = %v, %q; want %v, %q", tt.host, tt.port, allowed, rule, tt.allowed, tt.rule)
			}
		})
	}
}

func TestNewPolicyRejectsBadEntriesNamingThem(t *testing.T) {
	tests := []struct {
		name, entry, why string
	}{
		{"empty", "", "empty"},
		{"scheme", "https://example.com", "scheme"},
		{"path", "example.com/api", "path"},
		{"user", "user@example.com", "user"},
		{"query", "example.com?x", "query"},
		{"port zero", "example.com:0", "bad port"},
		{"port too big", "example.com:65536", "bad port"},
		{"port not a number", "example.com:https", "bad port"},
		{"port with sign", "example.com:+443", "bad port"},
		{"port with leading zero", "example.com:0443", "bad port"},
		{"port missing after colon", "example.com:", "port"},
		{"star alone", "*", "every host"},
		{"star alone with port", "*:443", "every host"},
		{"star inside", "a.*.b", "first label"},
		{"star as part of a label", "*foo.example.com", "first label"},
		{"double star", "*.*.example.com", "first label"},
		{"wildcard without domain", "*.", "every host"},
		{"wildcard over an empty label", "*..", "not a host name"},
		{"space", "example .com", "not a host name"},
		{"empty label", "a..b", "not a host name"},
		{"numeric name", "127.1", "not a host name"},
		{"wildcard over a number", "*.1", "not a host name"},
		{"IPv4 in brackets", "[127.0.0.1]:80", "IPv6"},
		{"name in brackets", "[example.com]:80", "not an IPv6 address"},
		{"unclosed bracket", "[::1:80", `"]"`},
		{"junk after bracket", "[::1]80", ":port"},
		{"colons but not IPv6", "a:b:c", "not a host name"},
		{"Kelvin sign", "\u212aey.test", "not a host name"},
		{"unspecified IPv4", "0.0.0.0:80", "unspecified"},
		{"unspecified IPv6", "[::]:443", "unspecified"},
		{"unspecified IPv4-mapped", "::ffff:0.0.0.0", "unspecified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPolicy([]string{"ok.example.com", tt.entry})
			if err == nil {
				t.Fatalf("NewPolicy accepted %q", tt.entry)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprintf("%q", tt.entry)) {
				t.Errorf("error %q does not name the entry %q", msg, tt.entry)
			}
			if !strings.Contains(msg, tt.why) {
				t.Errorf("error %q does not say %q", msg, tt.why)
			}
		})
	}
}

func TestDecideTunnelOpensOnlyNamedPortsAnd443ForTLS(t *testing.T) {
	tests := []struct {
		name    string
		allow   []string
		host    string
		port    int
		allowed bool
		rule    string
		tlsOnly bool
	}{
		{"entry without port: 443 for TLS", []string{"example.com"}, "example.com", 443, true, "example.com", true},
		{"entry without port: not 80", []string{"example.com"}, "example.com", 80, false, "default-deny", false},
		{"wildcard without port: not 80", []string{"*.example.com"}, "a.example.com", 80, false, "default-deny", false},
		{"named port carries anything", []string{"github.com:22"}, "github.com", 22, true, "github.com:22", false},
		{"named 80 carries anything", []string{"example.com:80"}, "example.com", 80, true, "example.com:80", false},
		{"named 443 carries anything", []string{"example.com:443"}, "example.com", 443, true, "example.com:443", false},
		{"any port: TLS only", []string{"example.com:*"}, "example.com", 8443, true, "example.com:*", true},
		{"wildcard:port carries anything", []string{"*.example.com:2222"}, "a.example.com", 2222, true, "*.example.com:2222", false},
		{"a named port wins over an earlier implicit one", []string{"example.com:*", "example.com:22"}, "example.com", 22, true, "example.com:22", false},
		{"IP literal without port: 443 for TLS", []string{"10.0.0.1"}, "10.0.0.1", 443, true, "10.0.0.1", true},
		{"IP literal without port: not 80", []string{"10.0.0.1"}, "10.0.0.1", 80, false, "default-deny", false},
		{"IP literal with its port", []string{"[::1]:8080"}, "::1", 8080, true, "[::1]:8080", false},
		{"Kelvin sign", []string{"key.test:*"}, "\u212aey.test", 443, false, "default-deny", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allowed, rule, tlsOnly := mustPolicy(t, tt.allow...).DecideTunnel(tt.host, tt.port)
			if allowed != tt.allowed || rule != tt.rule || tlsOnly != tt.tlsOnly {
				t.Errorf("DecideTunnel(%q, %d) = %v, %q, TLS only %v; want %v, %q, %v", tt.host, tt.port, allowed, rule, tlsOnly, tt.allowed, tt.rule, tt.tlsOnly)
			}
		})
	}
}

func TestBlockedAddrMatchesIPEntriesInAnyForm(t *testing.T) {
	p := mustPolicy(t, "*.example.com")
	if err := p.Block([]string{"10.0.0.1", "10.0.0.2:22", "fd00::1"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr    string
		port    int
		blocked string
	}{
		{"10.0.0.1", 443, "10.0.0.1"},
		{"::ffff:10.0.0.1", 80, "10.0.0.1"},
		{"10.0.0.2", 22, "10.0.0.2:22"},
		{"10.0.0.2", 443, ""},
		{"fd00::1", 443, "fd00::1"},
		{"10.0.0.3", 443, ""},
	}
	for _, tt := range tests {
		entry, blocked := p.BlockedAddr(netip.MustParseAddr(tt.addr), tt.port)
		if entry != tt.blocked || blocked != (tt.blocked != "") {
			t.Errorf("BlockedAddr(%s, %d) = %q, %v; want %q", tt.addr, tt.port, entry, blocked, tt.blocked)
		}
	}
}
