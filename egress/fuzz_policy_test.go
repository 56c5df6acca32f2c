package egress

import (
	"strings"
	"testing"
)

// FuzzPolicy: any allowlist is either refused or yields a policy whose
// decisions always name their rule, an entry when allowed, and that case
// or a trailing dot never change.
func FuzzPolicy(f *testing.F) {
	for _, seed := range []struct {
		allow, host string
		port        int
	}{
		{"api.anthropic.com", "api.anthropic.com", 443},
		{"*.example.com", "a.b.example.com", 80},
		{"*.example.com", "example.com", 443},
		{"github.com:22", "GitHub.com.", 22},
		{"host:*", "host", 65535},
		{"127.0.0.1:8080", "127.0.0.1", 8080},
		{"[::1]:8080,a.b", "::1", 8080},
		{"a.*.b", "a.x.b", 443},
		{"", "", 0},
	} {
		f.Add(seed.allow, seed.host, seed.port)
	}
	f.Fuzz(func(t *testing.T, allow, host string, port int) {
		entries := strings.Split(allow, ",")
		p, err := NewPolicy(entries)
		if err != nil {
			return
		}
		ok, rule := p.Decide(host, port)
		if ok && (rule == "" || rule == "default-deny") {
			t.Fatalf("allowed %s:%d by rule %q, which is no entry", host, port, rule)
		}
		if !ok && rule == "" {
			t.Fatalf("denied %s:%d without naming a rule", host, port)
		}
		if ok2, _ := p.Decide(strings.ToUpper(host)+".", port); ok2 != ok && !strings.HasSuffix(host, ".") && host != "" {
			t.Fatalf("%q and its upper case with a trailing dot decide differently", host)
		}
	})
}
