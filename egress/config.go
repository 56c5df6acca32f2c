// Package egress is the egress proxy that runs in a bottle's sidecar: the
// agent's only way out. It forwards plain HTTP and tunnels CONNECT to the
// targets an allowlist names, refuses everything else, and writes one JSON
// audit line per decision.
//
// Besides the allowlist it enforces, in this order: DLP (a request whose URL,
// headers or target carry a secret is refused, naming the rule and never the
// secret), a blocklist, the allowlist, an SSRF guard (a name that resolves to
// a private, loopback, link-local or otherwise non-public address is refused
// unless the host is trusted explicitly; the address checked is the address
// dialled; the blocklist is checked against those addresses too), and for
// CONNECT a check of the tunnel's first bytes: a tunnel to a port that no
// entry names must open with a TLS ClientHello naming the tunnel's host, and
// no ClientHello may name another host or carry Encrypted Client Hello.
package egress

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Config is what the sidecar is given (as JSON, on stdin or from a file).
// It holds secrets (DLP.Secrets): never log it or put it where docker
// inspect shows it.
type Config struct {
	Listen  string   `json:"listen"`  // empty means ":3128" (applied by Run)
	Session string   `json:"session"` // bottle session id, copied into every audit record
	Allow   []string `json:"allow"`   // allowlist entries, see Policy
	// Block entries (same forms as Allow) are refused even when an Allow
	// entry matches: a wildcard allow with holes in it.
	Block []string `json:"block,omitempty"`
	// Trusted hosts may resolve to non-public addresses; see Trust.
	Trusted []string  `json:"trusted,omitempty"`
	DLP     DLPConfig `json:"dlp"`
}

// DLPConfig says what the proxy treats as a secret.
type DLPConfig struct {
	// NoBuiltin turns the built-in key shapes off (see BuiltinPatterns).
	NoBuiltin bool `json:"no_builtin,omitempty"`
	// Disable names built-in patterns to leave out.
	Disable  []string  `json:"disable,omitempty"`
	Patterns []Pattern `json:"patterns,omitempty"`
	// Secrets are literal values (of host variables the manifest marks
	// secret) that must never leave.
	Secrets []Secret `json:"secrets,omitempty"`
}

// Pattern is a named regular expression (RE2 syntax) for a secret's shape.
type Pattern struct {
	Name  string `json:"name"`
	Regex string `json:"regex"`
}

// Secret is a literal secret value and the name it is reported by.
type Secret struct {
	Name  string `json:"name"` // the variable's name: what a refusal reports
	Value string `json:"value"`
}

// String never shows the value, so a Secret printed by mistake leaks nothing.
func (s Secret) String() string { return s.Name + "=(secret)" }

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// ReadConfig decodes a Config from r. Unknown fields are an error naming the
// field: a misspelt "allow" would otherwise silently deny everything.
func ReadConfig(r io.Reader) (Config, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("egress: read config: %w", err)
	}
	// Text after the object is more likely a broken file than intent.
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, errors.New("egress: read config: unexpected data after the JSON object")
	}
	return cfg, nil
}

// options builds what a Proxy decides with from cfg, and refuses a config
// that does not make sense before anything listens.
func (cfg Config) options() (Options, error) {
	policy, err := NewPolicy(cfg.Allow)
	if err != nil {
		return Options{}, err
	}
	if err := policy.Block(cfg.Block); err != nil {
		return Options{}, err
	}
	trust, err := NewTrust(cfg.Trusted)
	if err != nil {
		return Options{}, err
	}
	dlp, err := NewScanner(cfg.DLP)
	if err != nil {
		return Options{}, err
	}
	return Options{Policy: policy, Session: cfg.Session, DLP: dlp, Trust: trust}, nil
}
