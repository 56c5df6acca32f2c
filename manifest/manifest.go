// Package manifest reads bottle.yaml: which agents there are, which bottle
// (container) each runs in, and what that bottle may do. It parses,
// validates and fills in defaults, and reports every problem with the
// file, line and field to fix.
package manifest

import (
	_ "embed"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Manifest is a parsed, validated bottle.yaml.
type Manifest struct {
	Path    string // file it was read from; "(built-in)" for Default()
	Agents  map[string]*Agent
	Bottles map[string]*Bottle
	// Profiles are the manifest's own agent profiles; the built-in ones
	// (BuiltinProfiles) are known to every manifest and not listed here.
	Profiles map[string]*Profile
}

// Agent is one entry under agents: a program and what it is given.
type Agent struct {
	Name       string
	Bottle     string   // name of a bottle in the same manifest
	Profile    *Profile // the agent CLI it is; the built-in "claude" unless named
	Prompt     string   // prompt text; prompt_file's contents when that is given
	PromptFile string   // absolute path, "" when inline
	Skills     []Skill
	Command    []string // default: the profile's
	Args       []string
	Env        map[string]string
}

// Skill is a folder copied into the agent's skills.
type Skill struct {
	Name string // base name of the folder
	Dir  string // absolute path
}

// Bottle is one entry under bottles: the container an agent runs in.
type Bottle struct {
	Name    string
	Image   string // an image reference; exactly one of Image and Build
	Build   *Build
	Runtime string // "auto" (default), "runsc" or "runc"
	Egress  Egress
	SSH     []SSH
	Env     map[string]string // env: literal values, set in the container's configuration
	EnvFile string            // absolute path or ""
	// EnvFileVars are the env file's values. Env files usually hold
	// secrets, so they are given to each process, never written into the
	// container's configuration; env: wins over them.
	EnvFileVars map[string]string
	PassEnv     []string // names of host variables passed through
	Memory      int64    // bytes, 0 = unlimited
	Pids        int64    // 0 = unlimited
	Sidecar     *Sidecar // nil = built-in egress proxy
	// Pool is how many bottles the server keeps made ahead of time for
	// this bottle's warm starts: nil is the server's default, 0 turns warm
	// starts off. A bottle with a sidecar of its own never starts warm.
	Pool *int
}

// MaxPool is the largest pool: a pooled bottle holds a container pair and
// its networks while it waits.
const MaxPool = 8

// Build says how to build a bottle's image.
type Build struct {
	Context    string // absolute dir; not checked here, the builder reports a missing one
	Dockerfile string // path relative to Context, default "Dockerfile"
	Args       map[string]string
}

// Egress is where a bottle may connect, through the egress proxy, and what
// may not leave on the way. A policy file's entries are merged in.
type Egress struct {
	Allow []string // lowercase "host", "*.domain", "host:port", "*.domain:port", "host:*"
	// AllowFromProfile is set when neither the manifest nor the policy file
	// wrote an allowlist: Manifest.Agent then gives each agent its
	// profile's.
	AllowFromProfile bool
	// Block entries (the same forms) are refused even when Allow matches;
	// one without a port blocks every port.
	Block []string
	// Trusted hosts ("host", "*.domain") and addresses ("10.0.0.5",
	// "10.0.0.0/8") may resolve to private, loopback or link-local
	// addresses; the proxy refuses such targets otherwise (SSRF).
	Trusted []string
	// SecretEnv names host variables whose values must never leave through
	// the proxy. The values go to the proxy's stdin, never into a container
	// configuration.
	SecretEnv []string
	DLP       DLP
	// PolicyFile is the absolute path of a pipelock-style policy file whose
	// entries were merged into these fields, or "".
	PolicyFile string
	// Ask lets the built-in proxy hold a connection that only default-deny
	// refuses and ask the user (ask: true, the default); false refuses it
	// at once.
	Ask bool
	// AskTimeout is how long a held connection waits for the user's
	// answer before it is refused (ask_timeout, default DefaultAskTimeout).
	AskTimeout time.Duration
}

// Bounds of egress.ask_timeout.
const (
	DefaultAskTimeout = 30 * time.Second
	MinAskTimeout     = time.Second
	MaxAskTimeout     = 10 * time.Minute
)

// DLP configures the proxy's secret scanning of URLs and headers.
type DLP struct {
	// NoBuiltin turns the built-in key shapes off (builtin: false); the zero
	// value keeps them.
	NoBuiltin bool
	Disable   []string // built-in patterns left out, by name
	Patterns  []DLPPattern
}

// DLPPattern is a named RE2 regular expression for a secret's shape.
type DLPPattern struct {
	Name  string
	Regex string
}

// SSH is a server the agent may reach with a provisioned key.
type SSH struct {
	Host       string
	Port       int    // default 22
	User       string // optional
	Key        string // absolute path to a private key file
	KnownHosts string // absolute path or ""
}

// Sidecar replaces the built-in egress proxy with another image.
type Sidecar struct {
	Image      string
	Config     string // absolute host path or "" (copied into the sidecar)
	ConfigPath string // path inside the sidecar, default "/etc/bottle/proxy-config"
	Port       int    // default 3128
	Args       []string
}

// builtin is the Path of the default manifest.
const builtin = "(built-in)"

// Load reads, parses and validates a manifest file. Relative paths in it
// resolve against the file's directory; "~/" expands to $HOME.
func Load(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return Parse(path, data, filepath.Dir(path))
}

// Parse does what Load does for data read from file name (used in
// messages), with relative paths resolved against baseDir. Problems come
// back as *Error values in file order, joined with errors.Join.
func Parse(name string, data []byte, baseDir string) (*Manifest, error) {
	base, err := filepath.Abs(baseDir)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: resolve base directory: %w", name, err)
	}
	p := &parser{file: name, base: base}
	m := p.manifest(data)
	if err := p.err(); err != nil {
		return nil, err
	}
	return m, nil
}

//go:embed default.yaml
var defaultYAML []byte

// Default returns the built-in manifest (agent "claude" on bottle
// "claude"), whose build context lives in CacheDir(). It never fails: the
// embedded file is tested, and build contexts are not checked here.
func Default() *Manifest {
	m, err := Parse(builtin, defaultYAML, CacheDir())
	if err != nil {
		panic(fmt.Sprintf("manifest: the built-in default.yaml is invalid: %v", err))
	}
	return m
}

// CacheDir is where set-up puts build contexts: $BOTTLE_CACHE, else
// $XDG_CACHE_HOME/bottle, else ~/.cache/bottle, the same rule as
// scripts/setup.sh.
func CacheDir() string {
	dir := os.Getenv("BOTTLE_CACHE")
	if dir == "" {
		dir = os.Getenv("XDG_CACHE_HOME")
		if dir == "" {
			// With no home there is no per-user cache; a shared temporary
			// folder still lets the built-in manifest resolve.
			home, err := os.UserHomeDir()
			if err != nil {
				home = os.TempDir()
			}
			dir = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(dir, "bottle")
	}
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// Agent resolves an agent and its bottle. A bottle without an allowlist of
// its own comes back as a copy with the agent's profile's allowlist.
func (m *Manifest) Agent(name string) (*Agent, *Bottle, error) {
	a, ok := m.Agents[name]
	if !ok {
		return nil, nil, fmt.Errorf("%s: unknown agent %q; known agents: %s (add it under agents: or pick one of these)",
			m.Path, name, strings.Join(m.AgentNames(), ", "))
	}
	// Parse guarantees the bottle; a Manifest built by hand may not have it.
	b, ok := m.Bottles[a.Bottle]
	if !ok {
		return nil, nil, fmt.Errorf("%s: agent %q runs in bottle %q, which is not defined (add it under bottles:)", m.Path, name, a.Bottle)
	}
	if a.Profile == nil {
		return nil, nil, fmt.Errorf("%s: agent %q has no profile", m.Path, name)
	}
	if b.Egress.AllowFromProfile {
		own := *b
		own.Egress.Allow = slices.Clone(a.Profile.Allow)
		b = &own
	}
	return a, b, nil
}

// AgentNames returns the agents' names, sorted.
func (m *Manifest) AgentNames() []string {
	return slices.Sorted(maps.Keys(m.Agents))
}
