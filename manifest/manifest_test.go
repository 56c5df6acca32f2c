package manifest

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeFiles creates files under dir; a name ending in "/" is a folder.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const fullManifest = `agents:
  claude:
    bottle: web
    prompt_file: prompt.md
    skills: [skills/review, ~/skills/lint]
    command: [claude, --verbose]
    args: ["--model", "opus"]
    env: {FOO: bar, N: 1}
  shell:
    bottle: pinned
    prompt: be brief
  coder:
    bottle: pinned
    profile: coder
    prompt: fix it
profiles:
  coder:
    command: [coder, --yes]
    prompt: {via: arg, flag: --message}
    secrets: [{host: HOST_KEY, agent: CODER_KEY}, {host: SAME_NAME}]
    allow: [API.Coder.example, "coder.example:8443"]
    skills_dir: ~/.coder//skills/
bottles:
  web:
    build: {context: ., dockerfile: docker/Dockerfile, args: {BASE: "bottle/base:bookworm"}}
    runtime: runsc
    egress: {allow: [API.Anthropic.com, "*.anthropic.com", "github.com:022", "example.org:*"]}
    ssh:
      - {host: GitHub.com, port: 2222, user: git, key: ~/.ssh/id_ed25519, known_hosts: ~/.ssh/known_hosts}
      - {host: 10.0.0.5, key: keys/deploy}
    env: {K: V, SHARED: from-env}
    env_file: .env
    pass_env: [GITHUB_TOKEN, _X1]
    limits: {memory: 512m, pids: 512}
    sidecar: {image: pipelock:1, config: pipelock.yaml, config_path: /etc/pipelock.yaml, port: 8888, args: [--verbose, run]}
  pinned:
    image: registry.example.com:5000/team/tool:1.2
    runtime: runc
    limits: {memory: 8388608}
`

func TestParseFillsEveryFieldOfAFullManifest(t *testing.T) {
	dir, home := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	writeFiles(t, dir, map[string]string{
		"prompt.md":      "Review carefully.\n",
		"skills/review/": "",
		"keys/deploy":    "key",
		".env":           "# comment\n\nSHARED=from-file\nexport ONLY=\"quoted value\"\n",
		"pipelock.yaml":  "mode: strict\n",
	})
	writeFiles(t, home, map[string]string{
		"skills/lint/":     "",
		".ssh/id_ed25519":  "key",
		".ssh/known_hosts": "github.com ssh-ed25519 AAAA\n",
	})

	m, err := Parse("bottle.yaml", []byte(fullManifest), dir)
	if err != nil {
		t.Fatal(err)
	}

	coder := &Profile{
		Name:      "coder",
		Command:   []string{"coder", "--yes"},
		Prompt:    PromptVia{Via: ViaArg, Flag: "--message"},
		Secrets:   []Secret{{Host: "HOST_KEY", Agent: "CODER_KEY"}, {Host: "SAME_NAME", Agent: "SAME_NAME"}},
		Allow:     []string{"api.coder.example", "coder.example:8443"},
		SkillsDir: ".coder/skills",
	}
	want := &Manifest{
		Path:     "bottle.yaml",
		Profiles: map[string]*Profile{"coder": coder},
		Agents: map[string]*Agent{
			"claude": {
				Name:       "claude",
				Bottle:     "web",
				Profile:    claudeProfile,
				Prompt:     "Review carefully.\n",
				PromptFile: filepath.Join(dir, "prompt.md"),
				Skills: []Skill{
					{Name: "review", Dir: filepath.Join(dir, "skills/review")},
					{Name: "lint", Dir: filepath.Join(home, "skills/lint")},
				},
				Command: []string{"claude", "--verbose"},
				Args:    []string{"--model", "opus"},
				Env:     map[string]string{"FOO": "bar", "N": "1"},
			},
			"shell": {Name: "shell", Bottle: "pinned", Profile: claudeProfile, Prompt: "be brief", Command: []string{"claude"}},
			"coder": {Name: "coder", Bottle: "pinned", Profile: coder, Prompt: "fix it", Command: []string{"coder", "--yes"}},
		},
		Bottles: map[string]*Bottle{
			"web": {
				Name: "web",
				Build: &Build{
					Context:    dir,
					Dockerfile: "docker/Dockerfile",
					Args:       map[string]string{"BASE": "bottle/base:bookworm"},
				},
				Runtime: "runsc",
				Egress:  Egress{Allow: []string{"api.anthropic.com", "*.anthropic.com", "github.com:22", "example.org:*"}, Ask: true, AskTimeout: DefaultAskTimeout},
				SSH: []SSH{
					{
						Host:       "github.com",
						Port:       2222,
						User:       "git",
						Key:        filepath.Join(home, ".ssh/id_ed25519"),
						KnownHosts: filepath.Join(home, ".ssh/known_hosts"),
					},
					{Host: "10.0.0.5", Port: 22, Key: filepath.Join(dir, "keys/deploy")},
				},
				Env:         map[string]string{"K": "V", "SHARED": "from-env"},
				EnvFile:     filepath.Join(dir, ".env"),
				EnvFileVars: map[string]string{"SHARED": "from-file", "ONLY": "quoted value"},
				PassEnv:     []string{"GITHUB_TOKEN", "_X1"},
				Memory:      512 << 20,
				Pids:        512,
				Sidecar: &Sidecar{
					Image:      "pipelock:1",
					Config:     filepath.Join(dir, "pipelock.yaml"),
					ConfigPath: "/etc/pipelock.yaml",
					Port:       8888,
					Args:       []string{"--verbose", "run"},
				},
			},
			"pinned": {
				Name:    "pinned",
				Image:   "registry.example.com:5000/team/tool:1.2",
				Runtime: "runc",
				Egress:  Egress{AllowFromProfile: true, Ask: true, AskTimeout: DefaultAskTimeout},
				Memory:  8 << 20,
			},
		},
	}
	for name, a := range want.Agents {
		if !reflect.DeepEqual(m.Agents[name], a) {
			t.Errorf("agent %s:\n got %s\nwant %s", name, dump(m.Agents[name]), dump(a))
		}
	}
	for name, b := range want.Bottles {
		if got := m.Bottles[name]; !reflect.DeepEqual(got, b) {
			t.Errorf("bottle %s:\n got %s\nwant %s", name, dump(got), dump(b))
		}
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("manifest:\n got %s\nwant %s", dump(m), dump(want))
	}
}

// dump shows a value with its pointers followed, for readable diffs.
func dump(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestParseFillsDefaultsForOmittedFields(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"key": "k"})
	m, err := Parse("bottle.yaml", []byte(`
agents:
  a: {bottle: b}
bottles:
  b:
    build: {context: ctx}
    ssh: [{host: github.com, key: key}]
    sidecar: {image: proxy:1}
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	a, b, err := m.Agent("a")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"command", a.Command, []string{"claude"}},
		{"runtime", b.Runtime, "auto"},
		{"build context", b.Build.Context, filepath.Join(dir, "ctx")},
		{"dockerfile", b.Build.Dockerfile, "Dockerfile"},
		{"ssh port", b.SSH[0].Port, 22},
		{"sidecar port", b.Sidecar.Port, 3128},
		{"sidecar config path", b.Sidecar.ConfigPath, "/etc/bottle/proxy-config"},
		{"memory", b.Memory, int64(0)},
		{"pids", b.Pids, int64(0)},
		{"pool", b.Pool, (*int)(nil)},
		{"egress", b.Egress.Allow, claudeProfile.Allow},
		{"profile", a.Profile, claudeProfile},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
}

func TestDefaultIsValidEvenBeforeTheCacheExists(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "not-yet")
	t.Setenv("BOTTLE_CACHE", cache)
	m := Default()
	a, b, err := m.Agent("claude")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"path", m.Path, "(built-in)"},
		{"agents", m.AgentNames(), []string{"claude"}},
		{"bottle", a.Bottle, "claude"},
		{"command", a.Command, []string{"claude"}},
		{"build", *b.Build, Build{
			Context:    filepath.Join(cache, "agents/claude"),
			Dockerfile: "Dockerfile",
			Args:       map[string]string{"BASE": "bottle/base:bookworm"},
		}},
		{"runtime", b.Runtime, "auto"},
		{"egress", b.Egress.Allow, []string{"api.anthropic.com", "claude.ai", "platform.claude.com", "statsig.anthropic.com"}},
		{"profile", a.Profile, claudeProfile},
		{"env", b.Env, map[string]string{"DISABLE_AUTOUPDATER": "1"}},
		{"memory", b.Memory, int64(4 << 30)},
		{"pids", b.Pids, int64(1024)},
		{"sidecar", b.Sidecar, (*Sidecar)(nil)},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
	for _, words := range []string{"bottle", "~/workspace", "proxy", "Ask the user", "destructive"} {
		if !strings.Contains(a.Prompt, words) {
			t.Errorf("prompt does not mention %q:\n%s", words, a.Prompt)
		}
	}
}

func TestCacheDirPrefersBottleCacheThenXDGThenHome(t *testing.T) {
	tests := []struct {
		name, bottle, xdg, home, want string
	}{
		{"bottle cache wins", "/b", "/x", "/h", "/b"},
		{"xdg cache next", "", "/x", "/h", "/x/bottle"},
		{"home last", "", "", "/h", "/h/.cache/bottle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("BOTTLE_CACHE", tt.bottle)
			t.Setenv("XDG_CACHE_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			if got := CacheDir(); got != tt.want {
				t.Errorf("CacheDir() = %q, want %q", got, tt.want)
			}
		})
	}
}

// good is a valid manifest that the problem cases below break one piece of.
const good = `agents:
  claude:
    bottle: web
bottles:
  web:
    image: bottle/claude:1
`

func TestParseReportsEachProblemWithFileLineAndField(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		files map[string]string
		want  string // prefix of the first problem; {dir} is the manifest folder
	}{
		{"unknown top-level field", good + "agnets: {}\n",
			nil, `bottle.yaml:7: agnets: unknown field; allowed here: agents, bottles, profiles`},
		{"unknown agent field", "agents:\n  claude:\n    bottle: web\n    promt: hi\nbottles:\n  web: {image: x}\n",
			nil, `bottle.yaml:4: agents.claude.promt: unknown field; allowed here: bottle, profile, prompt, prompt_file, skills, command, args, env`},
		{"unknown build field", "agents:\n  claude:\n    bottle: web\nbottles:\n  web:\n    build:\n      context: .\n      dockerfle: D\n",
			nil, `bottle.yaml:8: bottles.web.build.dockerfle: unknown field; allowed here: context, dockerfile, args`},
		{"unknown ssh field", good + "    ssh:\n      - hots: github.com\n",
			nil, `bottle.yaml:8: bottles.web.ssh[0].hots: unknown field; allowed here: host, port, user, key, known_hosts`},
		{"agents given as a list", "agents: [claude]\n",
			nil, `bottle.yaml:1: agents: must be a mapping (key: value lines), got a list`},
		{"skills given as a mapping", "agents:\n  claude:\n    bottle: web\n    skills: {review: r}\nbottles:\n  web: {image: x}\n",
			nil, `bottle.yaml:4: agents.claude.skills: must be a list (like [a, b]), got a mapping`},
		{"allowlist given as a mapping", good + "    egress: {allow: {a: b}}\n",
			nil, `bottle.yaml:7: bottles.web.egress.allow: must be a list (like [a, b]), got a mapping`},
		{"non-integer pids", good + "    limits: {pids: lots}\n",
			nil, `bottle.yaml:7: bottles.web.limits.pids: must be a whole number, got "lots"`},
		{"quoted pids", good + "    limits: {pids: \"12\"}\n",
			nil, `bottle.yaml:7: bottles.web.limits.pids: must be a whole number, got "12"`},
		{"negative pids", good + "    limits: {pids: -1}\n",
			nil, `bottle.yaml:7: bottles.web.limits.pids: must not be negative`},
		{"negative pool", good + "    pool: -1\n",
			nil, `bottle.yaml:7: bottles.web.pool: must be 0 (no warm starts) to 8 bottles made ahead of time, got -1`},
		{"pool too large", good + "    pool: 100\n",
			nil, `bottle.yaml:7: bottles.web.pool: must be 0 (no warm starts) to 8 bottles made ahead of time, got 100`},
		{"pool as a word", good + "    pool: off\n",
			nil, `bottle.yaml:7: bottles.web.pool: must be a whole number, got "off"`},
		{"env given as a list", "agents:\n  claude:\n    bottle: web\n    env: [A=1]\nbottles:\n  web: {image: x}\n",
			nil, `bottle.yaml:4: agents.claude.env: must be a mapping`},
		{"agent without a bottle", "agents:\n  claude:\n    prompt: hi\nbottles:\n  web: {image: x}\n",
			nil, `bottle.yaml:2: agents.claude.bottle: required; name the bottle`},
		{"agent on an unknown bottle", "agents:\n  claude:\n    bottle: wbe\nbottles:\n  web: {image: x}\n",
			nil, `bottle.yaml:3: agents.claude.bottle: unknown bottle "wbe"; define it under bottles: (defined: web)`},
		{"missing prompt file", "agents:\n  claude:\n    bottle: web\n    prompt_file: nope.md\nbottles:\n  web: {image: x}\n",
			nil, `bottle.yaml:4: agents.claude.prompt_file: {dir}/nope.md does not exist; create it or fix the path`},
		{"prompt file is a folder", "agents:\n  claude:\n    bottle: web\n    prompt_file: p\nbottles:\n  web: {image: x}\n",
			map[string]string{"p/": ""}, `bottle.yaml:4: agents.claude.prompt_file: {dir}/p is not a regular file`},
		{"prompt and prompt file", "agents:\n  claude:\n    bottle: web\n    prompt: hi\n    prompt_file: p.md\nbottles:\n  web: {image: x}\n",
			map[string]string{"p.md": "hi"}, `bottle.yaml:5: agents.claude.prompt_file: give either prompt or prompt_file, not both`},
		{"missing skill folder", "agents:\n  claude:\n    bottle: web\n    skills:\n      - skills/ok\n      - skills/gone\nbottles:\n  web: {image: x}\n",
			map[string]string{"skills/ok/": ""}, `bottle.yaml:6: agents.claude.skills[1]: {dir}/skills/gone does not exist; create it or fix the path`},
		{"skill is a file", "agents:\n  claude:\n    bottle: web\n    skills: [s]\nbottles:\n  web: {image: x}\n",
			map[string]string{"s": ""}, `bottle.yaml:4: agents.claude.skills[0]: {dir}/s is not a directory`},
		{"two skills with one name", "agents:\n  claude:\n    bottle: web\n    skills: [a/review, b/review]\nbottles:\n  web: {image: x}\n",
			map[string]string{"a/review/": "", "b/review/": ""}, `bottle.yaml:4: agents.claude.skills[1]: skill "review" is also the name of {dir}/a/review`},
		{"command given as a string", "agents:\n  claude:\n    bottle: web\n    command: claude --verbose\nbottles:\n  web: {image: x}\n",
			nil, `bottle.yaml:4: agents.claude.command: must be a list (like [a, b]), got "claude --verbose"`},
		{"empty command", "agents:\n  claude:\n    bottle: web\n    command: []\nbottles:\n  web: {image: x}\n",
			nil, `bottle.yaml:4: agents.claude.command: must name a program`},
		{"missing ssh key", good + "    ssh:\n      - host: github.com\n        key: ~/.ssh/none\n",
			nil, `bottle.yaml:9: bottles.web.ssh[0].key: {home}/.ssh/none does not exist; create it or fix the path`},
		{"ssh without key", good + "    ssh:\n      - host: github.com\n",
			nil, `bottle.yaml:8: bottles.web.ssh[0].key: required; give the private key file`},
		{"ssh host with a port", good + "    ssh: [{host: \"github.com:22\", key: k}]\n",
			map[string]string{"k": ""}, `bottle.yaml:7: bottles.web.ssh[0].host: "github.com:22" is not a hostname or IP address`},
		{"ssh port out of range", good + "    ssh: [{host: github.com, port: 70000, key: k}]\n",
			map[string]string{"k": ""}, `bottle.yaml:7: bottles.web.ssh[0].port: must be a port number from 1 to 65535, got 70000`},
		{"bad runtime", good + "    runtime: gvisor\n",
			nil, `bottle.yaml:7: bottles.web.runtime: must be one of auto, runsc, runc (got "gvisor")`},
		{"image and build", good + "    build: {context: .}\n",
			nil, `bottle.yaml:7: bottles.web.build: give either image or build, not both`},
		{"neither image nor build", "agents:\n  claude:\n    bottle: web\nbottles:\n  web:\n    runtime: runc\n",
			nil, `bottle.yaml:5: bottles.web: needs an image or a build`},
		{"bad image reference", "agents:\n  claude:\n    bottle: web\nbottles:\n  web:\n    image: Bottle/Claude\n",
			nil, `bottle.yaml:6: bottles.web.image: "Bottle/Claude" is not an image reference`},
		{"build without context", "agents:\n  claude:\n    bottle: web\nbottles:\n  web:\n    build: {dockerfile: D}\n",
			nil, `bottle.yaml:6: bottles.web.build.context: required`},
		{"dockerfile outside the context", "agents:\n  claude:\n    bottle: web\nbottles:\n  web:\n    build: {context: ., dockerfile: ../D}\n",
			nil, `bottle.yaml:6: bottles.web.build.dockerfile: "../D" must be a path inside the context folder`},
		{"allowlist URL", good + "    egress:\n      allow: [ok.com, \"https://github.com/x\"]\n",
			nil, `bottle.yaml:8: bottles.web.egress.allow[1]: "https://github.com/x" is a URL; write the host only: "github.com"`},
		{"allowlist path", good + "    egress: {allow: [github.com/org]}\n",
			nil, `bottle.yaml:7: bottles.web.egress.allow[0]: "github.com/org" has a path; write the host only: "github.com"`},
		{"allowlist bad port", good + "    egress: {allow: [\"github.com:0\"]}\n",
			nil, `bottle.yaml:7: bottles.web.egress.allow[0]: "github.com:0" has a bad port`},
		{"allowlist bad host", good + "    egress: {allow: [\"*\"]}\n",
			nil, `bottle.yaml:7: bottles.web.egress.allow[0]: "*" is not a host`},
		{"bad memory unit", good + "    limits: {memory: 2x}\n",
			nil, `bottle.yaml:7: bottles.web.limits.memory: "2x" is not a size`},
		{"negative memory", good + "    limits: {memory: -1}\n",
			nil, `bottle.yaml:7: bottles.web.limits.memory: must not be negative`},
		{"memory below docker's minimum", good + "    limits: {memory: 1k}\n",
			nil, `bottle.yaml:7: bottles.web.limits.memory: 1024 bytes is below Docker's minimum`},
		{"memory as a list", good + "    limits: {memory: [1g]}\n",
			nil, `bottle.yaml:7: bottles.web.limits.memory: must be a size like 512m or 2g, got a list`},
		{"bad env file line", good + "    env_file: .env\n",
			map[string]string{".env": "A=1\nnot a pair\n"}, `{dir}/.env:2: bottles.web.env_file: expected KEY=VALUE, got "not a pair"`},
		{"missing env file", good + "    env_file: .env\n",
			nil, `bottle.yaml:7: bottles.web.env_file: {dir}/.env does not exist`},
		{"bad env name", good + "    env: {1BAD: x}\n",
			nil, `bottle.yaml:7: bottles.web.env.1BAD: invalid variable name`},
		{"bad pass_env name", good + "    pass_env: [OK, BAD-NAME]\n",
			nil, `bottle.yaml:7: bottles.web.pass_env[1]: invalid variable name "BAD-NAME"`},
		{"env value that is a mapping", good + "    env:\n      A: {b: c}\n",
			nil, `bottle.yaml:8: bottles.web.env.A: must be a string, got a mapping`},
		{"sidecar without image", good + "    sidecar: {port: 8080}\n",
			nil, `bottle.yaml:7: bottles.web.sidecar.image: required`},
		{"missing sidecar config", good + "    sidecar: {image: p:1, config: p.yaml}\n",
			nil, `bottle.yaml:7: bottles.web.sidecar.config: {dir}/p.yaml does not exist`},
		{"relative sidecar config path", good + "    sidecar: {image: p:1, config_path: etc/p.yaml}\n",
			nil, `bottle.yaml:7: bottles.web.sidecar.config_path: "etc/p.yaml" must be an absolute path`},
		{"bad agent name", "agents:\n  my agent:\n    bottle: web\nbottles:\n  web: {image: x}\n",
			nil, `bottle.yaml:2: agents.my agent: invalid name`},
		{"syntax error", "agents:\n  claude: [\n",
			nil, `bottle.yaml:2: YAML syntax error: did not find expected node content`},
		{"duplicate key", "agents:\n  claude:\n    bottle: web\n    bottle: web\nbottles:\n  web: {image: x}\n",
			nil, `bottle.yaml:4: agents.claude.bottle: mapping key "bottle" already defined at line 3`},
		{"duplicate agent", good + "agents: {}\n",
			nil, `bottle.yaml:7: agents: mapping key "agents" already defined at line 1`},
		{"empty file", "",
			nil, `bottle.yaml:1: empty manifest; define at least one agent under agents:`},
		{"comments only", "# nothing yet\n",
			nil, `bottle.yaml:1: empty manifest`},
		{"no agents section", "bottles:\n  web: {image: x}\n",
			nil, `bottle.yaml:1: agents: required; define at least one agent`},
		{"empty agents section", "agents: {}\nbottles:\n  web: {image: x}\n",
			nil, `bottle.yaml:1: agents: no agents; define at least one`},
		{"two documents", good + "---\nagents: {}\n",
			nil, `bottle.yaml:7: a second YAML document`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, home := t.TempDir(), t.TempDir()
			t.Setenv("HOME", home)
			writeFiles(t, dir, tt.files)
			_, err := Parse("bottle.yaml", []byte(tt.yaml), dir)
			var first *Error
			if !errors.As(err, &first) {
				t.Fatalf("Parse error = %v, want an *Error", err)
			}
			want := strings.NewReplacer("{dir}", dir, "{home}", home).Replace(tt.want)
			if !strings.HasPrefix(first.Error(), want) {
				t.Errorf("first problem:\n got %s\nwant %s...\n(all: %v)", first, want, err)
			}
		})
	}
}

func TestParseReportsAllProblemsInFileOrder(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{".env": "A=1\n'bad\n"})
	// The agent's bad bottle reference is found after the bottles are read,
	// and the env file's problem has its own line numbers: both still come
	// out where they are in the manifest.
	_, err := Parse("bottle.yaml", []byte(`agents:
  claude:
    bottle: nope
bottles:
  web:
    image: x
    runtime: gvisor
    env_file: .env
    limits: {pids: -3}
`), dir)
	want := []string{
		`bottle.yaml:3: agents.claude.bottle: unknown bottle "nope"`,
		`bottle.yaml:7: bottles.web.runtime: must be one of`,
		dir + `/.env:2: bottles.web.env_file: expected KEY=VALUE, got "'bad"`,
		`bottle.yaml:9: bottles.web.limits.pids: must not be negative`,
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("Parse error = %v, want several joined", err)
	}
	errs := joined.Unwrap()
	if len(errs) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(errs), len(want), err)
	}
	for i, e := range errs {
		if !strings.HasPrefix(e.Error(), want[i]) {
			t.Errorf("problem %d:\n got %s\nwant %s...", i, e, want[i])
		}
	}
}

func TestAgentListsTheKnownAgentsWhenTheNameIsUnknown(t *testing.T) {
	m, err := Parse("bottle.yaml", []byte("agents:\n  b: {bottle: web}\n  a: {bottle: web}\nbottles:\n  web: {image: x}\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		agent   string
		wantErr string
	}{
		{"a", ""},
		{"b", ""},
		{"c", `bottle.yaml: unknown agent "c"; known agents: a, b`},
	}
	for _, tt := range tests {
		a, b, err := m.Agent(tt.agent)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("Agent(%q): %v", tt.agent, err)
		case tt.wantErr == "" && (a.Name != tt.agent || b.Name != "web"):
			t.Errorf("Agent(%q) = %s on %s", tt.agent, a.Name, b.Name)
		case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
			t.Errorf("Agent(%q) error = %v, want %s...", tt.agent, err, tt.wantErr)
		}
	}
}

func TestLoadResolvesPathsAgainstTheManifestFolder(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"project/bottle.yaml": "agents:\n  a: {bottle: b, prompt_file: p.md}\nbottles:\n  b: {build: {context: ..}}\n",
		"project/p.md":        "hello",
	})
	m, err := Load(filepath.Join(dir, "project/bottle.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	a, b, err := m.Agent("a")
	if err != nil {
		t.Fatal(err)
	}
	if a.Prompt != "hello" || a.PromptFile != filepath.Join(dir, "project/p.md") || b.Build.Context != dir {
		t.Errorf("prompt %q from %s, context %s", a.Prompt, a.PromptFile, b.Build.Context)
	}
}

func TestLoadNamesTheFileAsGiven(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"bottle.yaml": "agents: []\n"})
	t.Chdir(dir)
	_, err := Load("bottle.yaml")
	if err == nil || !strings.HasPrefix(err.Error(), "bottle.yaml:1: agents: ") {
		t.Errorf("Load error = %v, want it to start with bottle.yaml:1: agents:", err)
	}
}

func TestLoadOfAMissingFileIsNotExist(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "bottle.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load error = %v, want one that is fs.ErrNotExist", err)
	}
}

func TestTheExampleManifestLoads(t *testing.T) {
	m, err := Load("testdata/example.bottle.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, b, err := m.Agent("reviewer")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Skills) != 1 || a.Skills[0].Name != "review" || b.Env["LOG_LEVEL"] != "info" || b.EnvFileVars["GREETING"] != "hello from the env file" {
		t.Errorf("example parsed unexpectedly: agent %s\nbottle %s", dump(a), dump(b))
	}
	fixer, _, err := m.Agent("fixer")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"coder", "--yes", "--message", "Fix the failing test."}
	if got := fixer.Argv("/home/node"); !reflect.DeepEqual(got, want) || fixer.Profile.Secrets[0].Agent != "CODER_API_KEY" {
		t.Errorf("the example's fixer: argv %q, profile %s", got, dump(fixer.Profile))
	}
}

func TestParseReadsPool(t *testing.T) {
	for _, tt := range []struct {
		yaml string
		want *int
	}{
		{"", nil},
		{"    pool: 0\n", ptr(0)},
		{"    pool: 3\n", ptr(3)},
	} {
		m, err := Parse("bottle.yaml", []byte(good+tt.yaml), t.TempDir())
		if err != nil {
			t.Fatalf("%q: %v", tt.yaml, err)
		}
		if got := m.Bottles["web"].Pool; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: pool = %v, want %v", tt.yaml, got, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
