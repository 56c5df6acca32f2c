package manifest

import (
	_ "embed"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Profile is what makes an agent CLI what it is: its program, how it takes
// its prompt, the host variables it needs and the hosts it talks to. An
// agent names one (default "claude"), so another CLI runs in a bottle by
// manifest alone.
type Profile struct {
	Name    string
	Command []string // the program and its fixed arguments
	Prompt  PromptVia
	Secrets []Secret
	// Allow is the allowlist of a bottle that writes no egress.allow of its
	// own, for agents of this profile.
	Allow []string
	// SkillsDir is the folder skills are copied into, relative to the agent
	// user's home; "" when the CLI takes no skills.
	SkillsDir string
}

// The ways a prompt reaches the agent (PromptVia.Via).
const (
	ViaFile = "file" // written to Path; its path follows Flag on the command line when Flag is set
	ViaArg  = "arg"  // the text itself on the command line, after Flag or last
	ViaEnv  = "env"  // the text in the variable Var
)

var vias = []string{ViaFile, ViaArg, ViaEnv}

// PromptVia is how a profile's program takes its prompt.
type PromptVia struct {
	Via  string
	Flag string // file, arg: the option the path or text follows; "" for none
	Var  string // env: the variable
	Path string // file: where the file is written, relative to the agent user's home
}

// defaultPromptPath is where a profile that says nothing of its prompt gets
// it: a file the agent may read, passed to nobody.
const defaultPromptPath = ".bottle-prompt.txt"

// Secret is a host variable the agent is given under its own name. The
// value goes to each process, never into the container's configuration,
// and the egress proxy refuses requests that carry it.
type Secret struct {
	Host  string // the variable read on the host
	Agent string // the variable the agent sees
}

// DefaultProfile is the profile of an agent that names none.
const DefaultProfile = "claude"

//go:embed profiles.yaml
var builtinProfilesYAML []byte

const builtinProfilesFile = "(built-in profiles)"

// builtinProfiles are the profiles every manifest knows. They are parsed
// once and shared: nothing changes a Profile after parsing, and callers get
// copies of its lists.
var builtinProfiles = sync.OnceValue(func() map[string]*Profile {
	p := &parser{file: builtinProfilesFile, base: "/"}
	out := map[string]*Profile{}
	if root, ok := p.document(builtinProfilesYAML); ok {
		top := field{key: root, val: root}
		if fs, ok := p.fields(top, "profiles"); ok {
			es, _ := p.entries(fs["profiles"])
			for _, e := range es {
				out[e.key.Value] = p.profile(e)
			}
		}
	}
	if err := p.err(); err != nil {
		panic(fmt.Sprintf("manifest: the built-in profiles.yaml is invalid: %v", err))
	}
	return out
})

// BuiltinProfiles returns the names of the profiles every manifest knows.
func BuiltinProfiles() []string {
	return slices.Sorted(maps.Keys(builtinProfiles()))
}

// profiles reads a manifest's own profiles; the built-in names are taken.
func (p *parser) profiles(f field) map[string]*Profile {
	es, _ := p.entries(f)
	out := map[string]*Profile{}
	for _, e := range es {
		if builtinProfiles()[e.key.Value] != nil {
			p.errorAt(e.key.Line, e.path, "%q is a built-in profile; give yours another name (built-in: %s)",
				e.key.Value, strings.Join(BuiltinProfiles(), ", "))
			continue
		}
		out[e.key.Value] = p.profile(e)
	}
	return out
}

func (p *parser) profile(f field) *Profile {
	pr := &Profile{Name: f.key.Value, Prompt: PromptVia{Via: ViaFile, Path: defaultPromptPath}}
	if err := checkName(pr.Name); err != nil {
		p.errorAt(f.key.Line, f.path, "%v", err)
	}
	fs, ok := p.fields(f, "command", "prompt", "secrets", "allow", "skills_dir")
	if !ok {
		return pr
	}
	if c, ok := fs["command"]; ok {
		pr.Command = p.command(c)
	} else {
		p.missing(f, "command", "give the program to run, like command: [aider]")
	}
	if v, ok := fs["prompt"]; ok {
		pr.Prompt = p.promptVia(v)
	}
	if s, ok := fs["secrets"]; ok {
		pr.Secrets = p.secrets(s)
	}
	if a, ok := fs["allow"]; ok {
		pr.Allow = p.list(a, allowEntry)
	}
	if s, ok := fs["skills_dir"]; ok {
		pr.SkillsDir, _ = p.homePath(s)
	}
	return pr
}

// command reads a command line: a list that names a program.
func (p *parser) command(f field) []string {
	c := p.list(f, nil)
	if f.val.Kind == yaml.SequenceNode && len(f.val.Content) == 0 {
		p.errorf(f, "must name a program, like [claude]; remove the field for the default")
	}
	return c
}

// promptVia reads {via: file|arg|env, ...}. Each way has its own fields, so
// a field of another way is reported rather than ignored.
func (p *parser) promptVia(f field) PromptVia {
	v := PromptVia{Via: ViaFile, Path: defaultPromptPath}
	allowed := map[string][]string{
		ViaFile: {"via", "path", "flag"},
		ViaArg:  {"via", "flag"},
		ViaEnv:  {"via", "var"},
	}
	fs, ok := p.fields(f, "via", "path", "flag", "var")
	if !ok {
		return v
	}
	via, ok := fs["via"]
	if !ok {
		p.missing(f, "via", "say how the program takes its prompt: via: file, arg or env")
		return v
	}
	if v.Via, ok = p.str(via); !ok {
		return v
	}
	if !slices.Contains(vias, v.Via) {
		p.errorf(via, "must be one of %s (got %q)", strings.Join(vias, ", "), v.Via)
		return v
	}
	for _, name := range slices.Sorted(maps.Keys(fs)) {
		if !slices.Contains(allowed[v.Via], name) {
			p.errorAt(fs[name].key.Line, fs[name].path, "not used with via: %s; allowed with it: %s", v.Via, strings.Join(allowed[v.Via], ", "))
		}
	}
	if v.Via != ViaFile {
		v.Path = ""
	}
	if pa, ok := fs["path"]; ok && v.Via == ViaFile {
		if rel, ok := p.homePath(pa); ok {
			v.Path = rel
		}
	}
	if fl, ok := fs["flag"]; ok && v.Via != ViaEnv {
		if s, ok := p.str(fl); ok && s == "" {
			p.errorf(fl, "must not be empty; remove the field to pass no option")
		} else if ok {
			v.Flag = s
		}
	}
	if va, ok := fs["var"]; ok && v.Via == ViaEnv {
		if s, ok := p.str(va); ok {
			if _, err := varName(s); err != nil {
				p.errorf(va, "%v", err)
			} else {
				v.Var = s
			}
		}
	} else if v.Via == ViaEnv {
		p.missing(f, "var", "name the variable that carries the prompt, like var: BOTTLE_PROMPT")
	}
	return v
}

// secrets reads [{host: NAME, agent: NAME}]; agent defaults to host.
func (p *parser) secrets(f field) []Secret {
	items, _ := p.items(f)
	var out []Secret
	for _, it := range items {
		fs, ok := p.fields(it, "host", "agent")
		if !ok {
			continue
		}
		var s Secret
		if h, ok := fs["host"]; !ok {
			p.missing(it, "host", "name the host variable to read, like host: OPENAI_API_KEY")
			continue
		} else if s.Host, ok = p.varField(h); !ok {
			continue
		}
		s.Agent = s.Host
		if a, ok := fs["agent"]; ok {
			if s.Agent, ok = p.varField(a); !ok {
				continue
			}
		}
		if slices.ContainsFunc(out, func(o Secret) bool { return o.Agent == s.Agent }) {
			p.errorf(it, "the agent's %s is given twice; map one host variable to it", s.Agent)
			continue
		}
		out = append(out, s)
	}
	return out
}

// varField reads a variable name.
func (p *parser) varField(f field) (string, bool) {
	s, ok := p.str(f)
	if !ok {
		return "", false
	}
	if _, err := varName(s); err != nil {
		p.errorf(f, "%v", err)
		return "", false
	}
	return s, true
}

// homePath reads a path in the agent user's home, written "~/...", and
// returns it relative to that home: the manifest does not know where the
// image puts the home, and provisioning writes nowhere else.
func (p *parser) homePath(f field) (string, bool) {
	s, ok := p.str(f)
	if !ok {
		return "", false
	}
	rel, found := strings.CutPrefix(s, "~/")
	rel = path.Clean(rel)
	if !found || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		p.errorf(f, "%q must be a path inside the agent's home, like ~/.agent/file", s)
		return "", false
	}
	return rel, true
}

// Argv is the agent's command line in a bottle whose agent user's home is
// home: its command, its args and, when it has a prompt, the prompt's
// arguments. Those go to the profile's own program only: an agent whose
// command runs another program (command: [bash] on the claude profile)
// may not know the option, and gets the prompt as the file or variable.
func (a *Agent) Argv(home string) []string {
	argv := append(slices.Clone(a.Command), a.Args...)
	pr := a.Profile
	if a.Prompt == "" || pr == nil || !a.runsProfileProgram() {
		return argv
	}
	switch pr.Prompt.Via {
	case ViaFile:
		if pr.Prompt.Flag != "" {
			argv = append(argv, pr.Prompt.Flag, a.PromptPath(home))
		}
	case ViaArg:
		if pr.Prompt.Flag != "" {
			argv = append(argv, pr.Prompt.Flag)
		}
		argv = append(argv, a.Prompt)
	}
	return argv
}

func (a *Agent) runsProfileProgram() bool {
	pc := a.Profile.Command
	return len(a.Command) > 0 && len(pc) > 0 && path.Base(a.Command[0]) == path.Base(pc[0])
}

// PromptPath is where the prompt file goes in a home at home, or "" when
// there is no prompt or the profile does not take it as a file.
func (a *Agent) PromptPath(home string) string {
	if a.Prompt == "" || a.Profile == nil || a.Profile.Prompt.Via != ViaFile {
		return ""
	}
	return path.Join(home, a.Profile.Prompt.Path)
}

// PromptEnv is what the agent's own process is given for its prompt: the
// variable of a profile that takes it via env, else nothing.
func (a *Agent) PromptEnv() map[string]string {
	if a.Prompt == "" || a.Profile == nil || a.Profile.Prompt.Via != ViaEnv {
		return nil
	}
	return map[string]string{a.Profile.Prompt.Var: a.Prompt}
}

// SkillsPath is the folder the skills go in, in a home at home.
func (a *Agent) SkillsPath(home string) string {
	if a.Profile == nil || a.Profile.SkillsDir == "" {
		return ""
	}
	return path.Join(home, a.Profile.SkillsDir)
}
