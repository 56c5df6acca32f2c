package manifest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// claudeProfile is what the built-in claude profile must be: Claude Code as
// bottle ran it before profiles existed (the prompt flag, the token
// variables, Anthropic's hosts, the skills folder).
var claudeProfile = &Profile{
	Name:    "claude",
	Command: []string{"claude"},
	Prompt:  PromptVia{Via: ViaFile, Flag: "--append-system-prompt-file", Path: ".claude-bottle-prompt.txt"},
	Secrets: []Secret{{Host: "CLAUDE_BOTTLE_OAUTH_TOKEN", Agent: "CLAUDE_CODE_OAUTH_TOKEN"}},
	Allow:   []string{"api.anthropic.com", "claude.ai", "platform.claude.com", "statsig.anthropic.com"},
	// Skills were copied into ~/.claude/skills/.
	SkillsDir: ".claude/skills",
}

func TestBuiltinProfilesAreClaudeAndAShell(t *testing.T) {
	if got := BuiltinProfiles(); !reflect.DeepEqual(got, []string{"claude", "shell"}) {
		t.Errorf("BuiltinProfiles() = %v, want [claude shell]", got)
	}
	tests := []struct {
		name string
		want *Profile
	}{
		{"claude", claudeProfile},
		{"shell", &Profile{Name: "shell", Command: []string{"bash"}, Prompt: PromptVia{Via: ViaEnv, Var: "BOTTLE_PROMPT"}}},
	}
	for _, tt := range tests {
		if got := builtinProfiles()[tt.name]; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("built-in profile %s:\n got %s\nwant %s", tt.name, dump(got), dump(tt.want))
		}
	}
}

// parseAgent parses a manifest of one bottle "b" (an image) plus extra, and
// resolves agent a.
func parseAgent(t *testing.T, extra string) (*Agent, *Bottle) {
	t.Helper()
	m, err := Parse("bottle.yaml", []byte(extra), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, b, err := m.Agent("a")
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestTheProfileSaysHowThePromptReachesTheAgent(t *testing.T) {
	const home = "/home/node"
	tests := []struct {
		name     string
		yaml     string
		argv     []string
		file     string
		env      map[string]string
		skillDir string
	}{
		{"claude by default: a file, its path after the flag",
			"agents: {a: {bottle: b, prompt: hi}}",
			[]string{"claude", "--append-system-prompt-file", "/home/node/.claude-bottle-prompt.txt"},
			"/home/node/.claude-bottle-prompt.txt", nil, "/home/node/.claude/skills"},
		{"claude without a prompt: no flag, no file",
			"agents: {a: {bottle: b}}",
			[]string{"claude"}, "", nil, "/home/node/.claude/skills"},
		{"claude's program by another path, with args: the flag comes last",
			"agents: {a: {bottle: b, prompt: hi, command: [/usr/local/bin/claude, -v], args: [--model, opus]}}",
			[]string{"/usr/local/bin/claude", "-v", "--model", "opus", "--append-system-prompt-file", "/home/node/.claude-bottle-prompt.txt"},
			"/home/node/.claude-bottle-prompt.txt", nil, "/home/node/.claude/skills"},
		{"another program on the claude profile gets the file, not the flag",
			"agents: {a: {bottle: b, prompt: hi, command: [bash]}}",
			[]string{"bash"}, "/home/node/.claude-bottle-prompt.txt", nil, "/home/node/.claude/skills"},
		{"the shell profile: a variable",
			"agents: {a: {bottle: b, profile: shell, prompt: hi}}",
			[]string{"bash"}, "", map[string]string{"BOTTLE_PROMPT": "hi"}, ""},
		{"a variable reaches another program too",
			"agents: {a: {bottle: b, profile: shell, prompt: hi, command: [sh, -c, 'echo $BOTTLE_PROMPT']}}",
			[]string{"sh", "-c", "echo $BOTTLE_PROMPT"}, "", map[string]string{"BOTTLE_PROMPT": "hi"}, ""},
		{"the text as an argument after a flag",
			"profiles: {p: {command: [coder], prompt: {via: arg, flag: --message}}}\nagents: {a: {bottle: b, profile: p, prompt: fix it, args: [--yes]}}",
			[]string{"coder", "--yes", "--message", "fix it"}, "", nil, ""},
		{"the text as the last argument",
			"profiles: {p: {command: [coder, run], prompt: {via: arg}}}\nagents: {a: {bottle: b, profile: p, prompt: fix it}}",
			[]string{"coder", "run", "fix it"}, "", nil, ""},
		{"a file of the profile's own, passed to nobody",
			"profiles: {p: {command: [coder], prompt: {via: file, path: ~/.coder/prompt.md}, skills_dir: ~/skills}}\nagents: {a: {bottle: b, profile: p, prompt: hi}}",
			[]string{"coder"}, "/home/node/.coder/prompt.md", nil, "/home/node/skills"},
		{"a profile that says nothing of its prompt: a file",
			"profiles: {p: {command: [coder]}}\nagents: {a: {bottle: b, profile: p, prompt: hi}}",
			[]string{"coder"}, "/home/node/.bottle-prompt.txt", nil, ""},
		{"no prompt, no variable",
			"agents: {a: {bottle: b, profile: shell}}",
			[]string{"bash"}, "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := parseAgent(t, tt.yaml+"\nbottles: {b: {image: x}}\n")
			if got := a.Argv(home); !reflect.DeepEqual(got, tt.argv) {
				t.Errorf("Argv = %q, want %q", got, tt.argv)
			}
			if got := a.PromptPath(home); got != tt.file {
				t.Errorf("PromptPath = %q, want %q", got, tt.file)
			}
			if got := a.PromptEnv(); !reflect.DeepEqual(got, tt.env) {
				t.Errorf("PromptEnv = %v, want %v", got, tt.env)
			}
			if got := a.SkillsPath(home); got != tt.skillDir {
				t.Errorf("SkillsPath = %q, want %q", got, tt.skillDir)
			}
		})
	}
}

func TestABottleWithoutAnAllowlistTakesTheAgentsProfiles(t *testing.T) {
	const profiles = "profiles: {p: {command: [coder], allow: [api.coder.example]}}\n"
	tests := []struct {
		name   string
		agent  string
		bottle string
		files  map[string]string
		want   []string
	}{
		{"no egress: the claude profile's", "{bottle: b}", "{image: x}", nil, claudeProfile.Allow},
		{"egress without allow", "{bottle: b}", "{image: x, egress: {block: [x.com]}}", nil, claudeProfile.Allow},
		{"allow with nothing under it", "{bottle: b}", "{image: x, egress: {allow: }}", nil, claudeProfile.Allow},
		{"another profile's", "{bottle: b, profile: p}", "{image: x}", nil, []string{"api.coder.example"}},
		{"a profile without an allowlist: none", "{bottle: b, profile: shell}", "{image: x}", nil, nil},
		{"the bottle's own stands", "{bottle: b}", "{image: x, egress: {allow: [github.com]}}", nil, []string{"github.com"}},
		{"an empty list is the bottle's own", "{bottle: b}", "{image: x, egress: {allow: []}}", nil, nil},
		{"a policy file's allowlist is the bottle's own", "{bottle: b}", "{image: x, egress: {policy_file: p.yaml}}",
			map[string]string{"p.yaml": "api_allowlist: [github.com]\n"}, []string{"github.com"}},
		{"a policy file without one: the profile's", "{bottle: b}", "{image: x, egress: {policy_file: p.yaml}}",
			map[string]string{"p.yaml": "mode: strict\n"}, claudeProfile.Allow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			yaml := profiles + "agents: {a: " + tt.agent + "}\nbottles: {b: " + tt.bottle + "}\n"
			m, err := Parse("bottle.yaml", []byte(yaml), dir)
			if err != nil {
				t.Fatal(err)
			}
			_, b, err := m.Agent("a")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(b.Egress.Allow, tt.want) {
				t.Errorf("allow = %q, want %q", b.Egress.Allow, tt.want)
			}
		})
	}
}

func TestTwoAgentsOfOneBottleGetTheirOwnProfilesAllowlists(t *testing.T) {
	m, err := Parse("bottle.yaml", []byte(`
profiles: {p: {command: [coder], allow: [api.coder.example]}}
agents: {a: {bottle: b}, c: {bottle: b, profile: p}}
bottles: {b: {image: x}}
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, ba, _ := m.Agent("a")
	_, bc, _ := m.Agent("c")
	if !reflect.DeepEqual(ba.Egress.Allow, claudeProfile.Allow) || !reflect.DeepEqual(bc.Egress.Allow, []string{"api.coder.example"}) {
		t.Errorf("allow of a = %q, of c = %q", ba.Egress.Allow, bc.Egress.Allow)
	}
	if m.Bottles["b"].Egress.Allow != nil {
		t.Errorf("the manifest's bottle was changed: allow = %q", m.Bottles["b"].Egress.Allow)
	}
}

func TestProfileProblemsNameFileLineAndField(t *testing.T) {
	const bottles = "bottles:\n  b: {image: x}\n"
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown profile",
			"agents:\n  a:\n    bottle: b\n    profile: aider\n" + bottles,
			`bottle.yaml:4: agents.a.profile: unknown profile "aider"; define it under profiles: (built-in: claude, shell; defined: none)`},
		{"a built-in name taken",
			"profiles:\n  claude: {command: [x]}\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:2: profiles.claude: "claude" is a built-in profile; give yours another name (built-in: claude, shell)`},
		{"unknown profile field",
			"profiles:\n  p:\n    command: [x]\n    env: {A: b}\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:4: profiles.p.env: unknown field; allowed here: command, prompt, secrets, allow, skills_dir`},
		{"profile without a command",
			"profiles:\n  p:\n    allow: [x.com]\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:2: profiles.p.command: required; give the program to run`},
		{"empty command",
			"profiles:\n  p:\n    command: []\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:3: profiles.p.command: must name a program`},
		{"prompt without via",
			"profiles:\n  p:\n    command: [x]\n    prompt: {flag: -p}\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:4: profiles.p.prompt.via: required; say how the program takes its prompt: via: file, arg or env`},
		{"unknown via",
			"profiles:\n  p:\n    command: [x]\n    prompt:\n      via: stdin\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:5: profiles.p.prompt.via: must be one of file, arg, env (got "stdin")`},
		{"env without var",
			"profiles:\n  p:\n    command: [x]\n    prompt: {via: env}\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:4: profiles.p.prompt.var: required; name the variable that carries the prompt`},
		{"bad var",
			"profiles:\n  p:\n    command: [x]\n    prompt: {via: env, var: MY-PROMPT}\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:4: profiles.p.prompt.var: invalid variable name "MY-PROMPT"`},
		{"a field of another way",
			"profiles:\n  p:\n    command: [x]\n    prompt:\n      via: env\n      var: P\n      flag: --prompt\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:7: profiles.p.prompt.flag: not used with via: env; allowed with it: via, var`},
		{"a path for an argument",
			"profiles:\n  p:\n    command: [x]\n    prompt: {via: arg, path: ~/p}\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:4: profiles.p.prompt.path: not used with via: arg; allowed with it: via, flag`},
		{"empty flag",
			"profiles:\n  p:\n    command: [x]\n    prompt: {via: arg, flag: \"\"}\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:4: profiles.p.prompt.flag: must not be empty`},
		{"prompt path outside the home",
			"profiles:\n  p:\n    command: [x]\n    prompt: {via: file, path: /etc/prompt}\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:4: profiles.p.prompt.path: "/etc/prompt" must be a path inside the agent's home`},
		{"skills dir climbing out of the home",
			"profiles:\n  p:\n    command: [x]\n    skills_dir: ~/../root\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:4: profiles.p.skills_dir: "~/../root" must be a path inside the agent's home`},
		{"skills dir that is the home",
			"profiles:\n  p:\n    command: [x]\n    skills_dir: ~/\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:4: profiles.p.skills_dir: "~/" must be a path inside the agent's home`},
		{"secret without host",
			"profiles:\n  p:\n    command: [x]\n    secrets:\n      - {agent: KEY}\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:5: profiles.p.secrets[0].host: required; name the host variable to read`},
		{"bad secret name",
			"profiles:\n  p:\n    command: [x]\n    secrets:\n      - {host: OK}\n      - {host: KEY, agent: 9KEY}\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:6: profiles.p.secrets[1].agent: invalid variable name "9KEY"`},
		{"one agent variable from two host variables",
			"profiles:\n  p:\n    command: [x]\n    secrets:\n      - {host: A, agent: KEY}\n      - {host: B, agent: KEY}\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:6: profiles.p.secrets[1]: the agent's KEY is given twice`},
		{"bad profile allowlist entry",
			"profiles:\n  p:\n    command: [x]\n    allow: [ok.com, \"https://x.com\"]\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:4: profiles.p.allow[1]: "https://x.com" is a URL`},
		{"skills for a profile that takes none",
			"agents:\n  a:\n    bottle: b\n    profile: shell\n    skills: [s]\n" + bottles,
			`bottle.yaml:5: agents.a.skills: profile shell takes no skills; give the profile a skills_dir, or remove skills`},
		{"bad profile name",
			"profiles:\n  my profile: {command: [x]}\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:2: profiles.my profile: invalid name`},
		{"profiles given as a list",
			"profiles: [p]\nagents:\n  a: {bottle: b}\n" + bottles,
			`bottle.yaml:1: profiles: must be a mapping`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"s/": ""})
			_, err := Parse("bottle.yaml", []byte(tt.yaml), dir)
			var first *Error
			if !errors.As(err, &first) {
				t.Fatalf("Parse error = %v, want an *Error", err)
			}
			if !strings.HasPrefix(first.Error(), tt.want) {
				t.Errorf("first problem:\n got %s\nwant %s...\n(all: %v)", first, tt.want, err)
			}
		})
	}
}
