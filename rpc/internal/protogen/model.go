package main

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/bottle-dev/bottle/rpc"
)

// model is what the generators render: the registry's methods, every
// named struct type they reach with its fields and docs, and the typed
// constants of the rpc package.
type model struct {
	methods []method
	// structs in order of first reach; byType finds them.
	structs []*structType
	byType  map[reflect.Type]*structType
	// nested are the structs that are no method's params or result.
	nested []*structType
	// consts are the typed constants of each named non-struct type.
	consts map[string][]constant
}

type method struct {
	rpc.MethodSpec
	// key is the name of the method's Go constant without "Method",
	// lower-cased first letter: the key in protocol.ts's Method.
	key    string
	params *structType
	result *structType // nil: null result (or none, for a notification)
}

type structType struct {
	name   string
	doc    string
	fields []field
}

type field struct {
	json     string
	optional bool
	typ      reflect.Type
	// wire is the `wire` tag: "id" or "object" for a raw JSON value.
	wire string
	enum []string
	doc  string
}

// constant is one typed constant, such as MessageError = 1.
type constant struct {
	key   string // the name without the type's prefix, lower-cased first letter
	value string // as written in Go: a number or a quoted string
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

// load builds the model from rpc's registry and the sources of the
// packages its types live in, found under root (the module's root).
func load(root string) (*model, error) {
	modPath, err := modulePath(root)
	if err != nil {
		return nil, err
	}
	docs := &docIndex{root: root, modPath: modPath, pkgs: map[string]*pkgDocs{}}
	rpcDocs, err := docs.pkg(reflect.TypeFor[rpc.MethodSpec]().PkgPath())
	if err != nil {
		return nil, err
	}
	m := &model{byType: map[reflect.Type]*structType{}, consts: map[string][]constant{}}
	top := map[*structType]bool{}
	for _, spec := range rpc.Methods {
		name, ok := rpcDocs.constName[spec.Name]
		if !ok {
			return nil, fmt.Errorf("method %q has no Method constant in package rpc", spec.Name)
		}
		mt := method{MethodSpec: spec, key: lowerFirst(strings.TrimPrefix(name, "Method"))}
		if spec.Params != nil {
			if mt.params, err = m.add(docs, reflect.TypeOf(spec.Params)); err != nil {
				return nil, err
			}
			top[mt.params] = true
		}
		if spec.Result != nil {
			if mt.result, err = m.add(docs, reflect.TypeOf(spec.Result)); err != nil {
				return nil, err
			}
			top[mt.result] = true
		}
		m.methods = append(m.methods, mt)
	}
	for _, x := range rpc.ExtraTypes {
		if _, err := m.add(docs, reflect.TypeOf(x)); err != nil {
			return nil, err
		}
	}
	for _, st := range m.structs {
		if !top[st] && st.name != emptyName {
			m.nested = append(m.nested, st)
		}
	}
	for _, st := range m.structs {
		for _, f := range st.fields {
			t := deref(f.typ)
			if t.Name() != "" && t.PkgPath() != "" && t.Kind() != reflect.Struct {
				if c := rpcDocs.consts[t.Name()]; c != nil {
					m.consts[t.Name()] = c
				}
			}
		}
	}
	return m, nil
}

// emptyName is the registry's type of the {} result.
const emptyName = "empty"

// add adds the struct type t and every struct type its fields reach.
func (m *model) add(docs *docIndex, t reflect.Type) (*structType, error) {
	t = deref(t)
	if st, ok := m.byType[t]; ok {
		return st, nil
	}
	if t.Kind() != reflect.Struct || t.Name() == "" {
		return nil, fmt.Errorf("%v: wire types are named structs", t)
	}
	pd, err := docs.pkg(t.PkgPath())
	if err != nil {
		return nil, err
	}
	st := &structType{name: t.Name(), doc: pd.types[t.Name()]}
	m.byType[t] = st
	m.structs = append(m.structs, st)
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("json")
		if !ok || tag == "-" || sf.Anonymous || !sf.IsExported() {
			return nil, fmt.Errorf("%s.%s: every wire field needs a json tag and a name of its own", t.Name(), sf.Name)
		}
		name, opts, _ := strings.Cut(tag, ",")
		f := field{
			json:     name,
			optional: strings.Contains(","+opts+",", ",omitempty,"),
			typ:      sf.Type,
			wire:     sf.Tag.Get("wire"),
			// "Kind says what..." reads as "says what..." in a table.
			doc: strings.TrimPrefix(pd.fields[t.Name()+"."+sf.Name], sf.Name+" "),
		}
		if e := sf.Tag.Get("enum"); e != "" {
			f.enum = strings.Split(e, ",")
		}
		if sf.Type == rawType && f.wire != "id" && f.wire != "object" {
			return nil, fmt.Errorf("%s.%s: a json.RawMessage field needs wire:\"id\" or wire:\"object\"", t.Name(), sf.Name)
		}
		st.fields = append(st.fields, f)
		if inner := elem(sf.Type); inner.Kind() == reflect.Struct && inner != timeType {
			if _, err := m.add(docs, inner); err != nil {
				return nil, err
			}
		}
	}
	return st, nil
}

// elem is the type a field holds, through pointers, slices and maps.
func elem(t reflect.Type) reflect.Type {
	for {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map:
			if t == rawType || t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
				return t
			}
			t = t.Elem()
		default:
			return t
		}
	}
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func lowerFirst(s string) string {
	r := []rune(s)
	if len(r) > 0 {
		r[0] = unicode.ToLower(r[0])
	}
	return string(r)
}

// docIndex reads the doc comments of the module's packages on demand.
type docIndex struct {
	root    string
	modPath string
	pkgs    map[string]*pkgDocs
}

type pkgDocs struct {
	types     map[string]string // type name -> doc
	fields    map[string]string // "Type.Field" -> doc
	constName map[string]string // a Method constant's value -> its name
	consts    map[string][]constant
}

func (d *docIndex) pkg(pkgPath string) (*pkgDocs, error) {
	if pd, ok := d.pkgs[pkgPath]; ok {
		return pd, nil
	}
	rel, ok := strings.CutPrefix(pkgPath, d.modPath)
	if !ok {
		return nil, fmt.Errorf("wire type from %s, outside module %s", pkgPath, d.modPath)
	}
	dir := filepath.Join(d.root, filepath.FromSlash(strings.TrimPrefix(rel, "/")))
	pd, err := parseDocs(dir)
	if err != nil {
		return nil, err
	}
	d.pkgs[pkgPath] = pd
	return pd, nil
}

func parseDocs(dir string) (*pkgDocs, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the wire types' package: %w", err)
	}
	pd := &pkgDocs{types: map[string]string{}, fields: map[string]string{}, constName: map[string]string{}, consts: map[string][]constant{}}
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", name, err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, spec := range gd.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					pd.addType(gd, s)
				case *ast.ValueSpec:
					pd.addConst(gd, s)
				}
			}
		}
	}
	return pd, nil
}

func (pd *pkgDocs) addType(gd *ast.GenDecl, s *ast.TypeSpec) {
	doc := s.Doc
	if doc == nil && len(gd.Specs) == 1 {
		doc = gd.Doc
	}
	pd.types[s.Name.Name] = oneLine(doc)
	st, ok := s.Type.(*ast.StructType)
	if !ok {
		return
	}
	for _, f := range st.Fields.List {
		d := f.Doc
		if d == nil {
			d = f.Comment
		}
		for _, n := range f.Names {
			pd.fields[s.Name.Name+"."+n.Name] = oneLine(d)
		}
	}
}

// addConst records the Method constants by value and the constants of named types (such as MessageType).
func (pd *pkgDocs) addConst(gd *ast.GenDecl, s *ast.ValueSpec) {
	if gd.Tok != token.CONST || len(s.Names) != 1 || len(s.Values) != 1 {
		return
	}
	lit, ok := s.Values[0].(*ast.BasicLit)
	if !ok {
		return
	}
	name := s.Names[0].Name
	if lit.Kind == token.STRING && strings.HasPrefix(name, "Method") {
		if v, err := strconv.Unquote(lit.Value); err == nil {
			pd.constName[v] = name
		}
	}
	if typ, ok := s.Type.(*ast.Ident); ok {
		key := lowerFirst(strings.TrimPrefix(name, strings.TrimSuffix(typ.Name, "Type")))
		pd.consts[typ.Name] = append(pd.consts[typ.Name], constant{key: key, value: lit.Value})
	}
}

// oneLine is a comment's text as one line.
func oneLine(cg *ast.CommentGroup) string {
	return strings.Join(strings.Fields(cg.Text()), " ")
}

func modulePath(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("finding the module: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.TrimSpace(p), nil
		}
	}
	return "", fmt.Errorf("%s/go.mod names no module", root)
}
