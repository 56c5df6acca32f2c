package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// parser walks yaml.Node trees itself, rather than decoding into structs,
// so that every problem carries the line of the node at fault and the
// dotted path the user wrote.
type parser struct {
	file string // manifest name for messages
	base string // absolute directory relative paths resolve against
	problems
}

// field is one value in the manifest: a mapping entry or a list item
// (whose key is the item itself). path is its dotted name for messages.
type field struct {
	key, val *yaml.Node
	path     string
}

// errorf reports a problem with f's value, at the value's line.
func (p *parser) errorf(f field, format string, args ...any) {
	p.errorAt(f.val.Line, f.path, format, args...)
}

// missing reports that the mapping f lacks a required key, at the line of
// f's own key: the place the user reads the block from.
func (p *parser) missing(f field, name, hint string) {
	p.errorAt(f.key.Line, join(f.path, name), "required; %s", hint)
}

func (p *parser) errorAt(line int, path, format string, args ...any) {
	p.add(line, &Error{File: p.file, Line: line, Field: path, Msg: fmt.Sprintf(format, args...)})
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

// yamlLine finds the line in yaml.v3's syntax errors, which come only as
// text ("yaml: line 3: did not find expected key").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document parses data into its root node, or reports why it cannot.
func (p *parser) document(data []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorAt(1, "", "empty manifest; define at least one agent under agents:")
		} else {
			p.syntax(err)
		}
		return nil, false
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		p.errorAt(next.Line, "", "a second YAML document; a manifest is one document, remove the --- line and what follows or merge them")
	case !errors.Is(err, io.EOF):
		p.syntax(err)
	}
	root := deref(doc.Content[0])
	if isNull(root) {
		p.errorAt(1, "", "empty manifest; define at least one agent under agents:")
		return nil, false
	}
	return root, true
}

func (p *parser) syntax(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	p.errorAt(line, "", "YAML syntax error: %s", msg)
}

// deref follows aliases so that anchors (&x, *x) can share values.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node is, for "must be X, got Y" messages.
func describe(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "nothing"
	default:
		return strconv.Quote(n.Value)
	}
}

// entries checks that f is a mapping and returns its entries in file
// order, reporting (and dropping) non-scalar and duplicate keys.
func (p *parser) entries(f field) ([]field, bool) {
	if f.val.Kind != yaml.MappingNode {
		p.errorf(f, "must be a mapping (key: value lines), got %s", describe(f.val))
		return nil, false
	}
	seen := map[string]int{}
	var out []field
	for i := 0; i+1 < len(f.val.Content); i += 2 {
		k, v := deref(f.val.Content[i]), deref(f.val.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.errorAt(k.Line, f.path, "keys must be plain names, got %s", describe(k))
			continue
		}
		path := join(f.path, k.Value)
		if first, dup := seen[k.Value]; dup {
			p.errorAt(k.Line, path, "mapping key %q already defined at line %d; remove one of them", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, field{key: k, val: v, path: path})
	}
	return out, true
}

// fields reads a mapping with a fixed set of keys. Keys with no value
// (null) count as absent, so "env:" with nothing under it is no error.
func (p *parser) fields(f field, allowed ...string) (map[string]field, bool) {
	return p.fieldsOr(f, "unknown field; allowed here: "+strings.Join(allowed, ", "), allowed)
}

// fieldsOr is fields with the message an unknown key gets.
func (p *parser) fieldsOr(f field, unknown string, allowed []string) (map[string]field, bool) {
	es, ok := p.entries(f)
	if !ok {
		return nil, false
	}
	out := map[string]field{}
	for _, e := range es {
		switch {
		case !slices.Contains(allowed, e.key.Value):
			p.errorAt(e.key.Line, e.path, "%s", unknown)
		case !isNull(e.val):
			out[e.key.Value] = e
		}
	}
	return out, true
}

// str reads a scalar as text; numbers and booleans keep their spelling.
func (p *parser) str(f field) (string, bool) {
	if f.val.Kind != yaml.ScalarNode || isNull(f.val) {
		p.errorf(f, "must be a string, got %s", describe(f.val))
		return "", false
	}
	return f.val.Value, true
}

// list reads a list of strings. check, when not nil, vets each entry and
// may normalise it; an entry it refuses is reported at its own line and
// left out, so that one bad entry does not hide the next.
func (p *parser) list(f field, check func(string) (string, error)) []string {
	items, ok := p.items(f)
	if !ok {
		return nil
	}
	var out []string
	for _, it := range items {
		s, ok := p.str(it)
		if !ok {
			continue
		}
		if check != nil {
			var err error
			if s, err = check(s); err != nil {
				p.errorf(it, "%v", err)
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

// items checks that f is a list and returns its items as fields.
func (p *parser) items(f field) ([]field, bool) {
	if f.val.Kind != yaml.SequenceNode {
		p.errorf(f, "must be a list (like [a, b]), got %s", describe(f.val))
		return nil, false
	}
	out := make([]field, len(f.val.Content))
	for i, n := range f.val.Content {
		n = deref(n)
		out[i] = field{key: n, val: n, path: index(f.path, i)}
	}
	return out, true
}

// int reads a whole number. Only YAML integers count: a quoted "12" is a
// string in YAML, and accepting it here would make the types unpredictable.
func (p *parser) int(f field) (int64, bool) {
	var v int64
	if f.val.Kind != yaml.ScalarNode || f.val.ShortTag() != "!!int" {
		p.errorf(f, "must be a whole number, got %s", describe(f.val))
		return 0, false
	}
	if err := f.val.Decode(&v); err != nil {
		p.errorf(f, "%s is out of range", f.val.Value)
		return 0, false
	}
	return v, true
}

// port reads a TCP port number.
func (p *parser) port(f field) (int, bool) {
	v, ok := p.int(f)
	if !ok {
		return 0, false
	}
	if v < 1 || v > 65535 {
		p.errorf(f, "must be a port number from 1 to 65535, got %d", v)
		return 0, false
	}
	return int(v), true
}

// vars reads a mapping of variable names to values (env, build args).
func (p *parser) vars(f field) map[string]string {
	es, _ := p.entries(f)
	out := map[string]string{}
	for _, e := range es {
		if !envName.MatchString(e.key.Value) {
			p.errorAt(e.key.Line, e.path, "invalid variable name; use letters, digits and _, not starting with a digit")
			continue
		}
		if v, ok := p.str(e); ok {
			out[e.key.Value] = v
		}
	}
	return out
}

// envName is what a shell and Docker accept as a variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// varName is a list entry that names a variable.
func varName(s string) (string, error) {
	if !envName.MatchString(s) {
		return "", fmt.Errorf("invalid variable name %q; use letters, digits and _, not starting with a digit", s)
	}
	return s, nil
}

// path reads a path and makes it absolute: "~" and "~/" expand to $HOME,
// relative paths resolve against the manifest's directory.
func (p *parser) path(f field) (string, bool) {
	s, ok := p.str(f)
	if !ok {
		return "", false
	}
	if s == "" {
		p.errorf(f, "must not be empty; give a path or remove the field")
		return "", false
	}
	if s == "~" || strings.HasPrefix(s, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			p.errorf(f, "cannot expand ~ (%v); set $HOME or write an absolute path", err)
			return "", false
		}
		s = filepath.Join(home, s[1:])
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(p.base, s)
	}
	return filepath.Clean(s), true
}

// existing reads a path that must name an existing file (or directory,
// when dir is set) now, so that a typo shows up before a bottle starts.
func (p *parser) existing(f field, dir bool) (string, bool) {
	path, ok := p.path(f)
	if !ok {
		return "", false
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.errorf(f, "%s does not exist; create it or fix the path", path)
	case err != nil:
		p.errorf(f, "%v", err)
	case dir && !info.IsDir():
		p.errorf(f, "%s is not a directory", path)
	case !dir && !info.Mode().IsRegular():
		p.errorf(f, "%s is not a regular file", path)
	default:
		return path, true
	}
	return "", false
}
