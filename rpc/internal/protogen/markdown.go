package main

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/bottle-dev/bottle/rpc"
)

// protocol.md keeps its prose by hand; its tables are generated between
// these markers, one block per key: "methods" (the summary), "params M",
// "result M" (of method M) and "type T" (a type that is no method's params
// or result).
const (
	beginMarker = "<!-- generated: "
	endMarker   = "<!-- end generated -->"
)

// methodHeading is a method's section heading: ### `bottle/plan` (request).
var methodHeading = regexp.MustCompile("^###+ `([^`]+)`")

// markdown regenerates the tables of protocol.md (given as md). It fails
// when a table the model needs has no block, when a block names nothing
// the model has, or when the method headings and the model's methods
// differ.
func markdown(m *model, md []byte) ([]byte, error) {
	blocks := map[string]string{"methods": methodsTable(m)}
	for _, mt := range m.methods {
		if mt.params != nil && len(mt.params.fields) > 0 {
			blocks["params "+mt.Name] = fieldTable(mt.params)
		}
		if mt.result != nil && len(mt.result.fields) > 0 {
			blocks["result "+mt.Name] = fieldTable(mt.result)
		}
	}
	for _, st := range m.nested {
		blocks["type "+st.name] = fieldTable(st)
	}

	var out strings.Builder
	var problems []string
	seen := map[string]bool{}
	headings := map[string]bool{}
	lines := strings.SplitAfter(string(md), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		out.WriteString(line)
		trimmed := strings.TrimSpace(line)
		if h := methodHeading.FindStringSubmatch(trimmed); h != nil {
			headings[h[1]] = true
		}
		key, ok := strings.CutPrefix(trimmed, beginMarker)
		if !ok {
			continue
		}
		key = strings.TrimSuffix(key, " -->")
		body, known := blocks[key]
		switch {
		case !known:
			problems = append(problems, fmt.Sprintf("line %d: a generated block %q, but the protocol has no such table", i+1, key))
		case seen[key]:
			problems = append(problems, fmt.Sprintf("line %d: a second generated block %q", i+1, key))
		}
		seen[key] = true
		j := i + 1
		for j < len(lines) && strings.TrimSpace(lines[j]) != endMarker {
			j++
		}
		if j == len(lines) {
			return nil, fmt.Errorf("protocol.md:%d: block %q has no %q", i+1, key, endMarker)
		}
		out.WriteString(body)
		out.WriteString(lines[j])
		i = j
	}
	for _, key := range sortedKeys(blocks) {
		if !seen[key] {
			problems = append(problems, fmt.Sprintf("no generated block %q: add %s%s --> and %s where its table belongs", key, beginMarker, key, endMarker))
		}
	}
	names := map[string]bool{}
	for _, mt := range m.methods {
		names[mt.Name] = true
		if !headings[mt.Name] {
			problems = append(problems, fmt.Sprintf("method %s has no section (### `%s`)", mt.Name, mt.Name))
		}
	}
	for _, h := range sortedKeys(headings) {
		if !names[h] {
			problems = append(problems, fmt.Sprintf("section ### `%s` names no method of rpc.Methods", h))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("protocol.md and rpc disagree:\n  %s", strings.Join(problems, "\n  "))
	}
	return []byte(out.String()), nil
}

func methodsTable(m *model) string {
	var b strings.Builder
	b.WriteString("| method | direction | params | result | what it does |\n| --- | --- | --- | --- | --- |\n")
	for _, mt := range m.methods {
		dir := string(mt.Dir)
		if mt.AlsoOtherDir {
			if mt.Dir == rpc.ClientRequest {
				dir += " (or notification)"
			} else {
				dir += " (or request)"
			}
		}
		result := "—"
		if mt.Dir == rpc.ClientRequest || mt.Dir == rpc.ServerRequest || mt.AlsoOtherDir {
			result = mdRef(mt.result, "`null`")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", mt.Name, dir, mdRef(mt.params, "none"), result, cell(mt.Doc))
	}
	return b.String()
}

func mdRef(st *structType, none string) string {
	switch {
	case st == nil:
		return none
	case len(st.fields) == 0:
		return "`{}`"
	}
	return st.name
}

func fieldTable(st *structType) string {
	var b strings.Builder
	b.WriteString("| field | type | meaning |\n| --- | --- | --- |\n")
	for _, f := range st.fields {
		opt := ""
		if f.optional {
			opt = "?"
		}
		fmt.Fprintf(&b, "| `%s%s` | %s | %s |\n", f.json, opt, mdType(f.typ, f), cell(f.doc))
	}
	return b.String()
}

// cell makes text safe in a table cell.
func cell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

func mdType(t reflect.Type, f field) string {
	switch {
	case f.wire == "id":
		return "integer or string"
	case f.wire == "object":
		return "object"
	case len(f.enum) > 0:
		vals := make([]string, len(f.enum))
		for i, v := range f.enum {
			vals[i] = "`" + v + "`"
		}
		return strings.Join(vals, ` \| `)
	}
	t = deref(t)
	switch {
	case t == timeType:
		return "string (RFC 3339)"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return "string (base64)"
	case t.Kind() == reflect.Slice:
		return mdType(t.Elem(), field{}) + "[]"
	case t.Kind() == reflect.Map:
		return "{string: " + mdType(t.Elem(), field{}) + "}"
	case t.Kind() == reflect.Struct:
		return t.Name()
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case isInteger(t):
		return "integer"
	case isNumber(t):
		return "number"
	}
	panic(fmt.Sprintf("protogen: no protocol.md type for %v", t))
}
