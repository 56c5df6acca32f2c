package manifest

import (
	"errors"
	"testing"
)

// FuzzParse: any input either parses into a manifest whose agents all
// resolve, or fails with errors that each name the file.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"agents: {a: {bottle: b}}\nbottles: {b: {image: x}}\n",
		"agents:\n  a:\n    bottle: b\n    prompt: hi\nbottles:\n  b:\n    image: x\n    runtime: runsc\n    egress: {allow: [\"*.x.com:443\", \"h:*\"]}\n    limits: {memory: 2g, pids: 10}\n",
		"profiles: {p: {command: [x], prompt: {via: env, var: P}, secrets: [{host: H}], skills_dir: ~/s}}\nagents: {a: {bottle: b, profile: p}}\nbottles: {b: {image: x}}\n",
		"agents: [1, 2]\n",
		"bottles: {b: {build: {context: .}}}\n",
		"a: &x [*x]\n",
		"agents: {a: {bottle: b, bottle: c}}\n",
		"\t\n:",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		m, err := Parse("fuzz.yaml", data, dir)
		if err != nil {
			var merr *Error
			if !errors.As(err, &merr) || merr.File == "" {
				t.Fatalf("error %q is not a manifest error naming the file", err)
			}
			return
		}
		for _, name := range m.AgentNames() {
			if _, _, err := m.Agent(name); err != nil {
				t.Fatalf("agent %s of a valid manifest does not resolve: %v", name, err)
			}
		}
	})
}
