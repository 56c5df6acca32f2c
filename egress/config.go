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
//
// The policy is live. The sidecar reads its Config as the first line of its
// stdin, which then stays open as a control channel that the server holds
// and the agent cannot reach: each line is a Control. A "policy" line
// replaces the allowlist and blocklist at once (each decision reads one
// policy; tunnels already open are never cut), and is audited as a "policy"
// record naming what changed and who asked. With Config.Ask, a connection
// that only default-deny refuses is held while the proxy asks about it: an
// "ask" record with an id, answered by an "answer" line. An approval lifts
// default-deny only: the blocklist, DLP, the SSRF guard (on the addresses
// the name resolves to, looked up only once approved, so that unapproved
// names never leave through DNS) and a tunnel's ClientHello check still
// refuse. Connections to one host:port share one
// pending question; at most 10 questions a minute and 20 pending are asked,
// beyond which a connection is refused at once ("too many questions"). No
// answer within Config.AskTimeout, or the control channel's end, refuses.
//
// A proxy started with Config.Wait (a bottle made ahead of time for the
// warm pool) refuses every request and every control line until one
// "configure" line brings its whole Config, secrets included; it is
// audited as a "policy" record. Only a waiting proxy takes one, once.
package egress

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
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
	// Ask: a connection that only default-deny refuses is held and asked
	// about on the audit stream (an "ask" record) instead of being refused
	// at once; the answer comes on the control channel (see Control).
	Ask bool `json:"ask,omitempty"`
	// AskTimeout is how long a held connection waits for its answer, as a
	// Go duration ("30s"); empty means DefaultAskTimeout.
	AskTimeout string `json:"askTimeout,omitempty"`
	// Wait: the proxy listens at once and refuses every request, and every
	// control line but one "configure" line, whose Config it then runs
	// with (Listen aside): a bottle made ahead of time, whose user is not
	// known yet. Allow, Block and Ask must be empty.
	Wait bool `json:"wait,omitempty"`
}

// DefaultAskTimeout is how long a question waits when Config.AskTimeout is
// empty.
const DefaultAskTimeout = 30 * time.Second

// Control is one line of the control channel: the sidecar's stdin after the
// config, held by the server and out of the agent's reach.
type Control struct {
	Op string `json:"op"` // OpPolicy, OpAnswer or OpConfigure
	// Allow and Block replace the live allowlist and blocklist entirely
	// (op "policy"). A bad entry rejects the whole line.
	Allow []string `json:"allow,omitempty"`
	Block []string `json:"block,omitempty"`
	// Client is who asked for the change (op "policy"), copied into its
	// audit record.
	Client string `json:"client,omitempty"`
	// ID is the question answered (op "answer"): an "ask" record's ID.
	ID uint64 `json:"id,omitempty"`
	// Decision answers it: DecisionAllow lets the held connections through
	// this once; anything else refuses them.
	Decision string `json:"decision,omitempty"`
	// Config is the whole config of a waiting proxy (op "configure"),
	// secrets included; Listen is ignored, the proxy listens already.
	Config *Config `json:"config,omitempty"`
}

// Values of Control.Op.
const (
	OpPolicy    = "policy"
	OpAnswer    = "answer"
	OpConfigure = "configure"
)

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

// ReadConfig decodes a Config from r, a file that holds nothing else.
// Unknown fields are an error naming the field: a misspelt "allow" would
// otherwise silently deny everything.
func ReadConfig(r io.Reader) (Config, error) {
	cfg, rest, err := ReadConfigStream(r)
	if err != nil {
		return Config{}, err
	}
	// Text after the object is more likely a broken file than intent.
	if _, err := json.NewDecoder(rest).Token(); err != io.EOF {
		return Config{}, errors.New("egress: read config: unexpected data after the JSON object")
	}
	return cfg, nil
}

// ReadConfigStream decodes the Config at the start of r, strictly as
// ReadConfig does, and returns what follows it: the control channel, which
// stays open. It reads no further than the config's closing brace needs, so
// it returns while the writer still holds the stream open.
func ReadConfigStream(r io.Reader) (Config, io.Reader, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, nil, fmt.Errorf("egress: read config: %w", err)
	}
	return cfg, io.MultiReader(dec.Buffered(), r), nil
}

// options builds what a Proxy decides with from cfg, and refuses a config
// that does not make sense before anything listens.
func (cfg Config) options() (Options, error) {
	if cfg.Wait && (len(cfg.Allow) > 0 || len(cfg.Block) > 0 || cfg.Ask) {
		return Options{}, errors.New("egress: a waiting proxy refuses everything until configured: allow, block and ask must be empty")
	}
	policy, err := compilePolicy(cfg.Allow, cfg.Block)
	if err != nil {
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
	opts := Options{Policy: policy, Session: cfg.Session, DLP: dlp, Trust: trust}
	if cfg.Ask {
		opts.AskTimeout = DefaultAskTimeout
		if cfg.AskTimeout != "" {
			d, err := time.ParseDuration(cfg.AskTimeout)
			if err != nil {
				return Options{}, fmt.Errorf("egress: askTimeout: %w", err)
			}
			if d <= 0 {
				return Options{}, fmt.Errorf("egress: askTimeout %s: not positive", cfg.AskTimeout)
			}
			opts.AskTimeout = d
		}
	}
	return opts, nil
}
