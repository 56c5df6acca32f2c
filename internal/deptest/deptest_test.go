package deptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// leaves hold data and rules: they import no layer above them.
var leaves = []string{"manifest", "egress", "dnsguard", "auditlog", "hostcopy", "gitwork"}

// mayImport is the direction of imports, top to bottom:
// cmd -> termclient -> rpc -> session -> backend <- dockerbottle, over the
// leaves; daemon (the socket, its listener and the stdio forwarder) sits
// beside rpc and knows a server only through its own small interface. It names, per folder, the other folders whose packages the
// folder's packages may import; a folder's packages may always import each
// other (rpc/internal/protogen reads rpc). A layer may skip the layers
// between it and the one it imports, but only cmd and the integration
// tests see dockerbottle: session knows a bottle only through backend.
var mayImport = map[string][]string{
	"cmd":          append([]string{"termclient", "daemon", "rpc", "session", "backend", "dockerbottle", "dockerhost"}, leaves...),
	"integration":  append([]string{"termclient", "daemon", "rpc", "session", "backend", "dockerbottle", "dockerhost"}, leaves...),
	"daemon":       nil,
	"termclient":   append([]string{"rpc"}, leaves...),
	"rpc":          append([]string{"session", "backend"}, leaves...),
	"session":      append([]string{"backend"}, leaves...),
	"dockerbottle": append([]string{"backend", "dockerhost"}, leaves...),
	// dockerhost reaches an engine; only what talks to one imports it.
	"dockerhost": nil,
	"backend":    leaves,
	// Between leaves, egress is the lowest: manifest checks allow entries
	// with the proxy's own parser, auditlog keeps the proxy's records.
	"manifest": {"egress"},
	"auditlog": {"egress"},
	"egress":   nil,
	"dnsguard": nil,
	"hostcopy": nil,
	"gitwork":  nil,
	// internal holds the tests' helpers: see testOnly.
	"internal": append([]string{"backend", "dockerhost"}, leaves...),
}

// testOnly is the folder of packages that only tests may import, from any
// layer.
const testOnly = "internal"

// pkg is one package of the module, its path and imports relative to the
// module's root (imports from outside the module left out).
type pkg struct {
	Path        string
	Imports     []string
	TestImports []string // of its _test.go files, in the package or not
}

// folder is the folder whose rules a package follows: its path's first
// element.
func folder(path string) string {
	first, _, _ := strings.Cut(path, "/")
	return first
}

// testSupport says whether a package is a suite that only tests import,
// named like net/http/httptest (backend/backendtest): it may use the
// tests' helpers.
func testSupport(path string) bool {
	return strings.HasSuffix(path[strings.LastIndex(path, "/")+1:], "test")
}

// violations returns every import in pkgs that crosses the layering, as
// "FROM imports TO: why".
func violations(pkgs []pkg) []string {
	var out []string
	check := func(from, to string, test bool) {
		f, t := folder(from), folder(to)
		allowed, known := mayImport[f]
		switch {
		case !known:
			out = append(out, fmt.Sprintf("%s: its folder %s/ has no import rule; give it a row in README.md's Layout table and a rule in mayImport", from, f))
		case f == t:
		case t == testOnly && (test || testSupport(from)):
		case t == testOnly:
			out = append(out, fmt.Sprintf("%s imports %s: only tests may import %s/", from, to, testOnly))
		case len(allowed) == 0:
			out = append(out, fmt.Sprintf("%s imports %s: %s/ may import no other folder", from, to, f))
		case !slices.Contains(allowed, t):
			out = append(out, fmt.Sprintf("%s imports %s: %s/ may import only %s", from, to, f, strings.Join(allowed, ", ")))
		}
	}
	for _, p := range pkgs {
		if _, known := mayImport[folder(p.Path)]; !known {
			check(p.Path, p.Path, false)
			continue
		}
		for _, to := range p.Imports {
			check(p.Path, to, false)
		}
		for _, to := range p.TestImports {
			check(p.Path, to, true)
		}
	}
	return out
}

// TestViolationsCatchesImportsAcrossLayers runs the checker on made-up
// import graphs, so it is known to fail the real one when it crosses.
func TestViolationsCatchesImportsAcrossLayers(t *testing.T) {
	tests := []struct {
		name string
		pkg  pkg
		want string // a part of the one violation, "" for none
	}{
		{"the layers in order", pkg{Path: "cmd/bottle-rpc", Imports: []string{"termclient", "rpc", "dockerbottle", "dnsguard"}}, ""},
		{"a layer skipping one", pkg{Path: "rpc", Imports: []string{"backend", "manifest"}}, ""},
		{"the adapter under backend", pkg{Path: "dockerbottle", Imports: []string{"backend", "auditlog", "egress"}}, ""},
		{"a folder's own packages", pkg{Path: "rpc/internal/protogen", Imports: []string{"rpc"}}, ""},
		{"a test helper in a test", pkg{Path: "session", TestImports: []string{"internal/testwait", "session"}}, ""},
		{"rpc importing dockerbottle", pkg{Path: "rpc", Imports: []string{"dockerbottle"}}, "rpc imports dockerbottle"},
		{"session importing dockerbottle", pkg{Path: "session", Imports: []string{"dockerbottle"}}, "session imports dockerbottle"},
		{"session's tests importing dockerbottle", pkg{Path: "session", TestImports: []string{"dockerbottle"}}, "session imports dockerbottle"},
		{"termclient importing dockerbottle", pkg{Path: "termclient", Imports: []string{"dockerbottle"}}, "termclient imports dockerbottle"},
		{"a layer importing one above", pkg{Path: "session", Imports: []string{"rpc"}}, "session imports rpc"},
		{"backend importing its adapter", pkg{Path: "backend", Imports: []string{"dockerbottle"}}, "backend imports dockerbottle"},
		{"a leaf importing a layer", pkg{Path: "manifest", Imports: []string{"backend"}}, "manifest imports backend"},
		{"a leaf importing the adapter", pkg{Path: "egress", Imports: []string{"dockerbottle"}}, "egress imports dockerbottle"},
		{"the lowest leaf importing another", pkg{Path: "egress", Imports: []string{"manifest"}}, "egress imports manifest"},
		{"a test helper in code", pkg{Path: "rpc", Imports: []string{"internal/lockedbuf"}}, "only tests may import internal/"},
		{"a test helper in a suite for tests", pkg{Path: "backend/backendtest", Imports: []string{"internal/testwait"}}, ""},
		{"a folder without a rule", pkg{Path: "newthing", Imports: []string{"egress"}}, "newthing/ has no import rule"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := violations([]pkg{tt.pkg})
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("violations = %q, want none", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.want)):
				t.Errorf("violations = %q, want one with %q", got, tt.want)
			}
		})
	}
}

// TestImportsFollowTheLayers checks every package of the module, with the
// imports of its tests, on each system the code is built for (files with
// build constraints import differently).
func TestImportsFollowTheLayers(t *testing.T) {
	for _, goos := range []string{"linux", "darwin"} {
		t.Run(goos, func(t *testing.T) {
			for _, v := range violations(modulePackages(t, goos)) {
				t.Error(v)
			}
		})
	}
}

// TestLayoutTableNamesEveryPackage keeps README.md's Layout table the map
// of the code: every package's folder, or one above it, has a row.
func TestLayoutTableNamesEveryPackage(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := layoutRows(string(readme))
	if len(rows) == 0 {
		t.Fatal("README.md has no Layout table rows like \"| `rpc/` | ... |\"")
	}
	for _, p := range modulePackages(t, "linux") {
		if !slices.ContainsFunc(rows, func(row string) bool { return p.Path == row || strings.HasPrefix(p.Path, row+"/") }) {
			t.Errorf("package %s/ has no row in README.md's Layout table", p.Path)
		}
	}
}

var layoutRow = regexp.MustCompile("(?m)^\\| `([^`]+)/` \\|")

// layoutRows returns the folders of the Layout section's table.
func layoutRows(readme string) []string {
	_, section, _ := strings.Cut(readme, "\n## Layout\n")
	section, _, _ = strings.Cut(section, "\n## ")
	var rows []string
	for _, m := range layoutRow.FindAllStringSubmatch(section, -1) {
		rows = append(rows, m[1])
	}
	return rows
}

// modulePackages lists the module's packages as go list sees them for
// goos, paths relative to the module's root.
func modulePackages(t *testing.T, goos string) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,TestImports,XTestImports,Module", "./...")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOOS="+goos)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath                         string
			Imports, TestImports, XTestImports []string
			Module                             struct{ Path string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list's output: %v", err)
		}
		local := func(paths []string) []string {
			var out []string
			for _, ip := range paths {
				if rel, ok := strings.CutPrefix(ip, p.Module.Path+"/"); ok {
					out = append(out, rel)
				}
			}
			return out
		}
		rel, ok := strings.CutPrefix(p.ImportPath, p.Module.Path+"/")
		if !ok {
			t.Fatalf("package %s is the module's root or outside it (%s); give it a folder", p.ImportPath, p.Module.Path)
		}
		// npm packages may ship Go files (flatted does): ./... matches
		// them once the extension's dependencies are installed, but they
		// are not the module's code.
		if strings.Contains("/"+rel+"/", "/node_modules/") {
			continue
		}
		pkgs = append(pkgs, pkg{
			Path:        rel,
			Imports:     local(p.Imports),
			TestImports: append(local(p.TestImports), local(p.XTestImports)...),
		})
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}
