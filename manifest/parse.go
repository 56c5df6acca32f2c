package manifest

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bottle-dev/bottle/egress"
)

// runtimes are the values of bottles.NAME.runtime: auto picks runsc when the
// daemon has it registered.
var runtimes = []string{"auto", "runsc", "runc"}

const (
	defaultDockerfile = "Dockerfile"
	defaultSSHPort    = 22
	defaultProxyPort  = egress.DefaultPort
	defaultConfigPath = "/etc/bottle/proxy-config"
)

func (p *parser) manifest(data []byte) *Manifest {
	m := &Manifest{Path: p.file, Agents: map[string]*Agent{}, Bottles: map[string]*Bottle{}, Profiles: map[string]*Profile{}}
	root, ok := p.document(data)
	if !ok {
		return m
	}
	top := field{key: root, val: root}
	fs, ok := p.fields(top, "agents", "bottles", "profiles")
	if !ok {
		return m
	}
	// Profiles and bottles first, whatever the file order, so agents can be
	// checked against them; problems are sorted back into file order at the
	// end.
	if f, ok := fs["profiles"]; ok {
		m.Profiles = p.profiles(f)
	}
	if f, ok := fs["bottles"]; ok {
		es, _ := p.entries(f)
		for _, e := range es {
			m.Bottles[e.key.Value] = p.bottle(e)
		}
	}
	f, ok := fs["agents"]
	if !ok {
		p.missing(top, "agents", "define at least one agent, like agents: {claude: {bottle: claude}}")
		return m
	}
	es, ok := p.entries(f)
	if ok && len(es) == 0 {
		p.errorf(f, "no agents; define at least one, like claude: {bottle: claude}")
	}
	for _, e := range es {
		m.Agents[e.key.Value] = p.agent(e, m.Bottles, m.Profiles)
	}
	return m
}

func (p *parser) agent(f field, bottles map[string]*Bottle, profiles map[string]*Profile) *Agent {
	a := &Agent{Name: f.key.Value, Profile: builtinProfiles()[DefaultProfile]}
	if err := checkName(a.Name); err != nil {
		p.errorAt(f.key.Line, f.path, "%v", err)
	}
	fs, ok := p.fields(f, "bottle", "profile", "prompt", "prompt_file", "skills", "command", "args", "env")
	if !ok {
		a.Command = slices.Clone(a.Profile.Command)
		return a
	}
	if pf, ok := fs["profile"]; ok {
		if name, ok := p.str(pf); ok {
			if pr := cmp.Or(profiles[name], builtinProfiles()[name]); pr != nil {
				a.Profile = pr
			} else {
				p.errorf(pf, "unknown profile %q; define it under profiles: (built-in: %s; defined: %s)",
					name, strings.Join(BuiltinProfiles(), ", "), known(profiles))
			}
		}
	}
	a.Command = slices.Clone(a.Profile.Command)
	if b, ok := fs["bottle"]; !ok {
		p.missing(f, "bottle", "name the bottle this agent runs in, one of those under bottles:")
	} else if a.Bottle, ok = p.str(b); ok && bottles[a.Bottle] == nil {
		p.errorf(b, "unknown bottle %q; define it under bottles: (defined: %s)", a.Bottle, known(bottles))
	}
	if pf, ok := fs["prompt_file"]; ok {
		if _, both := fs["prompt"]; both {
			p.errorf(pf, "give either prompt or prompt_file, not both")
		} else if a.PromptFile, ok = p.existing(pf, false); ok {
			if text, err := os.ReadFile(a.PromptFile); err != nil {
				p.errorf(pf, "%v", err)
			} else {
				a.Prompt = string(text)
			}
		}
	} else if pr, ok := fs["prompt"]; ok {
		a.Prompt, _ = p.str(pr)
	}
	if sk, ok := fs["skills"]; ok {
		a.Skills = p.skills(sk)
		if len(a.Skills) > 0 && a.Profile.SkillsDir == "" {
			p.errorf(sk, "profile %s takes no skills; give the profile a skills_dir, or remove skills", a.Profile.Name)
		}
	}
	if c, ok := fs["command"]; ok {
		a.Command = p.command(c)
	}
	if args, ok := fs["args"]; ok {
		a.Args = p.list(args, nil)
	}
	if env, ok := fs["env"]; ok {
		a.Env = p.vars(env)
	}
	return a
}

func known[T any](m map[string]T) string {
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

// skills reads skill folders. They are copied in by base name, so two with
// the same base name would collide.
func (p *parser) skills(f field) []Skill {
	items, _ := p.items(f)
	var out []Skill
	seen := map[string]string{}
	for _, it := range items {
		dir, ok := p.existing(it, true)
		if !ok {
			continue
		}
		name := filepath.Base(dir)
		if other, dup := seen[name]; dup {
			p.errorf(it, "skill %q is also the name of %s; rename one of the folders", name, other)
			continue
		}
		seen[name] = dir
		out = append(out, Skill{Name: name, Dir: dir})
	}
	return out
}

func (p *parser) bottle(f field) *Bottle {
	b := &Bottle{Name: f.key.Value, Runtime: "auto", Egress: defaultEgress()}
	if err := checkName(b.Name); err != nil {
		p.errorAt(f.key.Line, f.path, "%v", err)
	}
	fs, ok := p.fields(f, "image", "build", "runtime", "egress", "ssh", "env", "env_file", "pass_env", "limits", "sidecar", "pool")
	if !ok {
		return b
	}
	img, hasImage := fs["image"]
	build, hasBuild := fs["build"]
	switch {
	case hasImage && hasBuild:
		p.errorf(build, "give either image or build, not both")
	case hasImage:
		b.Image = p.image(img)
	case hasBuild:
		b.Build = p.build(build)
	default:
		p.errorAt(f.key.Line, f.path, "needs an image or a build; add image: NAME:TAG or build: {context: DIR}")
	}
	if r, ok := fs["runtime"]; ok {
		if s, ok := p.str(r); ok && !slices.Contains(runtimes, s) {
			p.errorf(r, "must be one of %s (got %q)", strings.Join(runtimes, ", "), s)
		} else if ok {
			b.Runtime = s
		}
	}
	if e, ok := fs["egress"]; ok {
		b.Egress = p.egress(e)
	}
	if s, ok := fs["ssh"]; ok {
		items, _ := p.items(s)
		for _, it := range items {
			if ssh, ok := p.ssh(it); ok {
				b.SSH = append(b.SSH, ssh)
			}
		}
	}
	if ef, ok := fs["env_file"]; ok {
		b.EnvFile, b.EnvFileVars = p.envFile(ef)
	}
	if env, ok := fs["env"]; ok {
		b.Env = p.vars(env)
	}
	if pe, ok := fs["pass_env"]; ok {
		b.PassEnv = p.list(pe, varName)
	}
	if l, ok := fs["limits"]; ok {
		b.Memory, b.Pids = p.limits(l)
	}
	if n, ok := fs["pool"]; ok {
		b.Pool = p.pool(n)
	}
	if s, ok := fs["sidecar"]; ok {
		b.Sidecar = p.sidecar(s)
		if e := b.Egress; len(e.Block) > 0 || len(e.Trusted) > 0 || len(e.SecretEnv) > 0 || e.DLP.NoBuiltin ||
			len(e.DLP.Disable) > 0 || len(e.DLP.Patterns) > 0 || e.PolicyFile != "" {
			p.errorAt(s.key.Line, s.path, "another sidecar does not read egress.block, trusted, secret_env, dlp or policy_file, which only the built-in proxy enforces; configure your proxy instead, or remove sidecar:")
		}
	}
	return b
}

func (p *parser) image(f field) string {
	s, ok := p.str(f)
	if !ok {
		return ""
	}
	if err := checkImage(s); err != nil {
		p.errorf(f, "%v", err)
	}
	return s
}

// build reads a build section. The context is not checked: the built-in
// manifest names one that set-up creates later, and the builder reports a
// missing one.
func (p *parser) build(f field) *Build {
	b := &Build{Dockerfile: defaultDockerfile}
	fs, ok := p.fields(f, "context", "dockerfile", "args")
	if !ok {
		return b
	}
	if c, ok := fs["context"]; ok {
		b.Context, _ = p.path(c)
	} else {
		p.missing(f, "context", "give the folder to build from, like context: .")
	}
	if d, ok := fs["dockerfile"]; ok {
		if s, ok := p.str(d); ok && !filepath.IsLocal(s) {
			p.errorf(d, "%q must be a path inside the context folder, like Dockerfile or docker/Dockerfile", s)
		} else if ok {
			b.Dockerfile = filepath.Clean(s)
		}
	}
	if a, ok := fs["args"]; ok {
		b.Args = p.vars(a)
	}
	return b
}

// defaultEgress is a bottle's egress before its manifest says anything:
// the profile's allowlist, and the user asked about other hosts.
func defaultEgress() Egress {
	return Egress{AllowFromProfile: true, Ask: true, AskTimeout: DefaultAskTimeout}
}

func (p *parser) egress(f field) Egress {
	e := defaultEgress()
	fs, ok := p.fields(f, "allow", "block", "trusted", "secret_env", "dlp", "policy_file", "ask", "ask_timeout")
	if !ok {
		return e
	}
	if a, ok := fs["ask"]; ok {
		if v, ok := p.bool(a); ok {
			e.Ask = v
		}
	}
	if t, ok := fs["ask_timeout"]; ok {
		if d, ok := p.duration(t, MinAskTimeout, MaxAskTimeout); ok {
			e.AskTimeout = d
		}
	}
	if a, ok := fs["allow"]; ok {
		e.Allow = p.list(a, allowEntry)
		e.AllowFromProfile = false
	}
	if b, ok := fs["block"]; ok {
		e.Block = p.list(b, allowEntry)
	}
	if tr, ok := fs["trusted"]; ok {
		e.Trusted = p.list(tr, trustedEntry)
	}
	if se, ok := fs["secret_env"]; ok {
		e.SecretEnv = p.list(se, varName)
	}
	if d, ok := fs["dlp"]; ok {
		e.DLP = p.dlp(d)
	}
	if pf, ok := fs["policy_file"]; ok {
		p.policyFile(pf, &e)
		e.AllowFromProfile = e.AllowFromProfile && len(e.Allow) == 0
	}
	return e
}

func (p *parser) dlp(f field) DLP {
	var d DLP
	fs, ok := p.fields(f, "builtin", "disable", "patterns")
	if !ok {
		return d
	}
	if b, ok := fs["builtin"]; ok {
		if v, ok := p.bool(b); ok {
			d.NoBuiltin = !v
		}
	}
	if dis, ok := fs["disable"]; ok {
		d.Disable = p.list(dis, builtinPattern)
	}
	if pats, ok := fs["patterns"]; ok {
		items, _ := p.items(pats)
		for _, it := range items {
			if pat, ok := p.dlpPattern(it, "name", "regex"); ok {
				p.addPattern(&d, it, pat)
			}
		}
	}
	return d
}

// dlpPattern reads one {name, regex} mapping; extra names the fields
// besides those two that are allowed (and ignored) here.
func (p *parser) dlpPattern(f field, allowed ...string) (DLPPattern, bool) {
	var pat DLPPattern
	fs, ok := p.fields(f, allowed...)
	if !ok {
		return pat, false
	}
	n, hasName := fs["name"]
	r, hasRegex := fs["regex"]
	if !hasName {
		p.missing(f, "name", "name the pattern: refusals and the audit report it by name")
	}
	if !hasRegex {
		p.missing(f, "regex", "give the secret's shape as a regular expression (RE2 syntax)")
	}
	if !hasName || !hasRegex {
		return pat, false
	}
	var okName, okRegex bool
	if pat.Name, okName = p.str(n); okName {
		if err := checkPatternName(pat.Name); err != nil {
			p.errorf(n, "%v", err)
			okName = false
		}
	}
	if pat.Regex, okRegex = p.str(r); okRegex {
		if err := checkPatternRegex(pat.Regex); err != nil {
			p.errorf(r, "%v", err)
			okRegex = false
		}
	}
	return pat, okName && okRegex
}

// addPattern adds pat to d unless its name is taken.
func (p *parser) addPattern(d *DLP, f field, pat DLPPattern) {
	taken := slices.ContainsFunc(d.Patterns, func(q DLPPattern) bool { return q.Name == pat.Name })
	if taken || slices.Contains(egress.BuiltinNames(), pat.Name) {
		p.errorf(f, "a DLP pattern named %q already exists; give this one another name", pat.Name)
		return
	}
	d.Patterns = append(d.Patterns, pat)
}

// duration reads a Go duration ("30s", "2m") from lo to hi.
func (p *parser) duration(f field, lo, hi time.Duration) (time.Duration, bool) {
	s, ok := p.str(f)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.errorf(f, "%q is not a duration; write a number with a unit, like 30s or 2m", s)
		return 0, false
	case d < lo || d > hi:
		p.errorf(f, "must be from %v to %v, got %v", lo, hi, d)
		return 0, false
	}
	return d, true
}

// bool reads a YAML boolean.
func (p *parser) bool(f field) (bool, bool) {
	if f.val.Kind != yaml.ScalarNode || f.val.ShortTag() != "!!bool" {
		p.errorf(f, "must be true or false, got %s", describe(f.val))
		return false, false
	}
	var v bool
	if err := f.val.Decode(&v); err != nil {
		p.errorf(f, "must be true or false, got %s", describe(f.val))
		return false, false
	}
	return v, true
}

func (p *parser) ssh(f field) (SSH, bool) {
	s := SSH{Port: defaultSSHPort}
	fs, ok := p.fields(f, "host", "port", "user", "key", "known_hosts")
	if !ok {
		return s, false
	}
	if h, ok := fs["host"]; !ok {
		p.missing(f, "host", "give the server to connect to, like host: github.com")
	} else if v, ok := p.str(h); ok {
		var err error
		if s.Host, err = checkSSHHost(v); err != nil {
			p.errorf(h, "%v", err)
		}
	}
	if port, ok := fs["port"]; ok {
		s.Port, _ = p.port(port)
	}
	if u, ok := fs["user"]; ok {
		if s.User, ok = p.str(u); ok {
			if err := checkSSHUser(s.User); err != nil {
				p.errorf(u, "%v", err)
			}
		}
	}
	if k, ok := fs["key"]; ok {
		s.Key, _ = p.existing(k, false)
	} else {
		p.missing(f, "key", "give the private key file, like key: ~/.ssh/id_ed25519")
	}
	if kh, ok := fs["known_hosts"]; ok {
		s.KnownHosts, _ = p.existing(kh, false)
	}
	return s, true
}

// envFile reads the env file named by f and returns its path and
// variables. Its problems name the env file and its own line numbers, and
// sort with the manifest line that names it.
func (p *parser) envFile(f field) (string, map[string]string) {
	path, ok := p.existing(f, false)
	if !ok {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		p.errorf(f, "%v", err)
		return path, nil
	}
	vars, errs := parseEnvFile(string(data))
	for _, e := range errs {
		p.add(f.val.Line, &Error{File: path, Line: e.line, Field: f.path, Msg: e.msg})
	}
	return path, vars
}

func (p *parser) limits(f field) (memory, pids int64) {
	fs, ok := p.fields(f, "memory", "pids")
	if !ok {
		return 0, 0
	}
	if m, ok := fs["memory"]; ok {
		memory = p.memory(m)
	}
	if n, ok := fs["pids"]; ok {
		if v, ok := p.int(n); ok && v < 0 {
			p.errorf(n, "must not be negative; use 0 for no limit")
		} else if ok {
			pids = v
		}
	}
	return memory, pids
}

// memory reads a size: a plain number of bytes or a string like "2g".
func (p *parser) memory(f field) int64 {
	var n int64
	var err error
	switch {
	case f.val.Kind == yaml.ScalarNode && f.val.ShortTag() == "!!int":
		var ok bool
		if n, ok = p.int(f); !ok {
			return 0
		}
		n, err = checkMemory(n)
	case f.val.Kind == yaml.ScalarNode && f.val.ShortTag() == "!!str":
		n, err = parseMemory(f.val.Value)
	default:
		err = fmt.Errorf("must be a size like 512m or 2g, got %s", describe(f.val))
	}
	if err != nil {
		p.errorf(f, "%v", err)
		return 0
	}
	return n
}

// pool reads a pool size: 0 (no warm starts) to MaxPool.
func (p *parser) pool(f field) *int {
	v, ok := p.int(f)
	if !ok {
		return nil
	}
	if v < 0 || v > MaxPool {
		p.errorf(f, "must be 0 (no warm starts) to %d bottles made ahead of time, got %d", MaxPool, v)
		return nil
	}
	n := int(v)
	return &n
}

func (p *parser) sidecar(f field) *Sidecar {
	s := &Sidecar{ConfigPath: defaultConfigPath, Port: defaultProxyPort}
	fs, ok := p.fields(f, "image", "config", "config_path", "port", "args")
	if !ok {
		return s
	}
	if img, ok := fs["image"]; ok {
		s.Image = p.image(img)
	} else {
		p.missing(f, "image", "name the proxy image to run, or remove sidecar: for the built-in proxy")
	}
	if c, ok := fs["config"]; ok {
		s.Config, _ = p.existing(c, false)
	}
	if cp, ok := fs["config_path"]; ok {
		if v, ok := p.str(cp); ok && !strings.HasPrefix(v, "/") {
			p.errorf(cp, "%q must be an absolute path inside the sidecar, like /etc/proxy.yaml", v)
		} else if ok {
			s.ConfigPath = filepath.Clean(v)
		}
	}
	if port, ok := fs["port"]; ok {
		if v, ok := p.port(port); ok {
			s.Port = v
		}
	}
	if a, ok := fs["args"]; ok {
		s.Args = p.list(a, nil)
	}
	return s
}
