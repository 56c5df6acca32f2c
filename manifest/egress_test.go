package manifest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const egressHead = "agents:\n  a: {bottle: web}\nbottles:\n  web:\n    image: x\n"

func TestParseReadsTheEgressSecurityFields(t *testing.T) {
	dir := t.TempDir()
	y := egressHead + `    egress:
      allow: [api.anthropic.com, "git.test:22"]
      block: ["Paste.Example.com"]
      trusted: [git.test, "*.corp.test", 10.20.0.0/16, 10.0.0.5]
      secret_env: [GITHUB_TOKEN, DEPLOY_KEY]
      dlp:
        builtin: true
        disable: [aws-secret-key]
        patterns:
          - {name: internal-token, regex: 'itk_[a-z0-9]{32}'}
`
	m, err := Parse("bottle.yaml", []byte(y), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Egress{
		Allow:     []string{"api.anthropic.com", "git.test:22"},
		Block:     []string{"paste.example.com"},
		Trusted:   []string{"git.test", "*.corp.test", "10.20.0.0/16", "10.0.0.5"},
		SecretEnv: []string{"GITHUB_TOKEN", "DEPLOY_KEY"},
		DLP: DLP{
			Disable:  []string{"aws-secret-key"},
			Patterns: []DLPPattern{{Name: "internal-token", Regex: "itk_[a-z0-9]{32}"}},
		},
		Ask:        true,
		AskTimeout: DefaultAskTimeout,
	}
	if got := m.Bottles["web"].Egress; !reflect.DeepEqual(got, want) {
		t.Errorf("egress =\n%+v\nwant\n%+v", got, want)
	}
}

func TestDLPBuiltinFalseTurnsTheBuiltinsOff(t *testing.T) {
	m, err := Parse("bottle.yaml", []byte(egressHead+"    egress: {dlp: {builtin: false}}\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !m.Bottles["web"].Egress.DLP.NoBuiltin {
		t.Error("builtin: false left the built-in patterns on")
	}
	m, _ = Parse("bottle.yaml", []byte(egressHead), t.TempDir())
	if m.Bottles["web"].Egress.DLP.NoBuiltin {
		t.Error("without a dlp section the built-in patterns are off")
	}
}

func TestEgressSecurityFieldsReportFileLineAndField(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown egress field", "    egress: {allowed: [a]}\n",
			`bottle.yaml:6: bottles.web.egress.allowed: unknown field; allowed here: allow, block, trusted, secret_env, dlp, policy_file`},
		{"trusted with a port", "    egress: {trusted: [\"git.test:22\"]}\n",
			`bottle.yaml:6: bottles.web.egress.trusted[0]: "git.test:22" is not a trusted host; write a host, *.domain, an IP address or a CIDR range like 10.0.0.0/8, without a port`},
		{"bad block entry", "    egress: {block: [\"https://x.com\"]}\n",
			`bottle.yaml:6: bottles.web.egress.block[0]: "https://x.com" is a URL`},
		{"bad secret_env name", "    egress: {secret_env: [1TOKEN]}\n",
			`bottle.yaml:6: bottles.web.egress.secret_env[0]: invalid variable name "1TOKEN"`},
		{"builtin not a bool", "    egress: {dlp: {builtin: yes please}}\n",
			`bottle.yaml:6: bottles.web.egress.dlp.builtin: must be true or false, got "yes please"`},
		{"disable unknown pattern", "    egress: {dlp: {disable: [github]}}\n",
			`bottle.yaml:6: bottles.web.egress.dlp.disable[0]: "github" is not a built-in pattern; they are anthropic-key, `},
		{"pattern without regex", "    egress:\n      dlp:\n        patterns:\n          - {name: x}\n",
			`bottle.yaml:9: bottles.web.egress.dlp.patterns[0].regex: required; give the secret's shape`},
		{"pattern with a bad regex", "    egress:\n      dlp:\n        patterns:\n          - {name: x, regex: 'a(b'}\n",
			`bottle.yaml:9: bottles.web.egress.dlp.patterns[0].regex: not a regular expression (RE2 syntax): missing closing )`},
		{"pattern matching everything", "    egress:\n      dlp:\n        patterns:\n          - {name: x, regex: '.*'}\n",
			`bottle.yaml:9: bottles.web.egress.dlp.patterns[0].regex: ".*" matches empty text, so it would refuse every request`},
		{"pattern named like a built-in", "    egress:\n      dlp:\n        patterns:\n          - {name: github-token, regex: 'x'}\n",
			`bottle.yaml:9: bottles.web.egress.dlp.patterns[0]: a DLP pattern named "github-token" already exists`},
		{"unknown pattern field", "    egress:\n      dlp:\n        patterns:\n          - {name: x, regex: y, severity: high}\n",
			`bottle.yaml:9: bottles.web.egress.dlp.patterns[0].severity: unknown field; allowed here: name, regex`},
		{"built-in proxy settings with another sidecar", "    egress: {secret_env: [TOKEN]}\n    sidecar: {image: pipelock:1}\n",
			`bottle.yaml:7: bottles.web.sidecar: another sidecar does not read egress.block, trusted, secret_env, dlp or policy_file`},
		{"missing policy file", "    egress: {policy_file: pipelock.yaml}\n",
			`bottle.yaml:6: bottles.web.egress.policy_file: {dir}/pipelock.yaml does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Parse("bottle.yaml", []byte(egressHead+tt.yaml), dir)
			var first *Error
			if !errors.As(err, &first) {
				t.Fatalf("Parse error = %v, want an *Error", err)
			}
			want := strings.ReplaceAll(tt.want, "{dir}", dir)
			if !strings.HasPrefix(first.Error(), want) {
				t.Errorf("first problem:\n got %s\nwant %s...", first, want)
			}
		})
	}
}

const pipelockPolicy = `# A pipelock config cut down to what bottle's proxy enforces.
version: 1
mode: strict
enforce: true
api_allowlist:
  - "*.anthropic.com"
  - github.com
trusted_domains: [git.internal]
ssrf:
  ip_allowlist: [10.20.0.0/16]
fetch_proxy:
  monitoring:
    blocklist:
      - "*.pastebin.com"
dlp:
  include_defaults: false
  patterns:
    - name: "Internal Token"
      regex: 'itk_[a-z0-9]{32}'
      severity: critical
`

func TestPolicyFileMergesIntoTheEgress(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"pipelock.yaml": pipelockPolicy})
	y := egressHead + "    egress:\n      allow: [github.com, \"git.internal:22\"]\n      policy_file: pipelock.yaml\n"
	m, err := Parse("bottle.yaml", []byte(y), dir)
	if err != nil {
		t.Fatal(err)
	}
	got := m.Bottles["web"].Egress
	want := Egress{
		// pipelock's "*.domain" covers the domain too; duplicates are dropped.
		Allow:      []string{"github.com", "git.internal:22", "*.anthropic.com", "anthropic.com"},
		Block:      []string{"*.pastebin.com", "pastebin.com"},
		Trusted:    []string{"git.internal", "10.20.0.0/16"},
		DLP:        DLP{NoBuiltin: true, Patterns: []DLPPattern{{Name: "Internal Token", Regex: "itk_[a-z0-9]{32}"}}},
		PolicyFile: dir + "/pipelock.yaml",
		Ask:        true,
		AskTimeout: DefaultAskTimeout,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("egress =\n%+v\nwant\n%+v", got, want)
	}
}

// TestBadPolicyFilesFailWithFileLineAndField: the policy file's own name
// and lines, and the field in it.
func TestBadPolicyFilesFailWithFileLineAndField(t *testing.T) {
	tests := []struct {
		name, policy, want string
	}{
		{"unenforced pipelock section", "version: 1\napi_allowlist: [a.com]\nresponse_scanning:\n  enabled: true\n",
			`{dir}/pipelock.yaml:3: response_scanning: not enforced by bottle's built-in proxy, which enforces api_allowlist, `},
		{"typo", "version: 1\napi_alowlist: [a.com]\n",
			`{dir}/pipelock.yaml:2: api_alowlist: not enforced by bottle's built-in proxy`},
		{"unenforced nested field", "fetch_proxy:\n  monitoring:\n    blocklist: []\n    entropy_threshold: 4.5\n",
			`{dir}/pipelock.yaml:4: fetch_proxy.monitoring.entropy_threshold: not enforced by bottle's built-in proxy`},
		{"fetch proxy listen", "fetch_proxy:\n  listen: 127.0.0.1:8888\n",
			`{dir}/pipelock.yaml:2: fetch_proxy.listen: not enforced by bottle's built-in proxy`},
		{"scan_env", "dlp:\n  scan_env: true\n",
			`{dir}/pipelock.yaml:2: dlp.scan_env: not enforced by bottle's built-in proxy`},
		{"bad allowlist entry", "api_allowlist:\n  - ok.com\n  - https://github.com/x\n",
			`{dir}/pipelock.yaml:3: api_allowlist[1]: "https://github.com/x" is a URL`},
		{"bad regex", "dlp:\n  patterns:\n    - name: broken\n      regex: '(['\n",
			`{dir}/pipelock.yaml:4: dlp.patterns[0].regex: not a regular expression (RE2 syntax)`},
		{"validator", "dlp:\n  patterns:\n    - name: cc\n      regex: '[0-9]{16}'\n      validator: luhn\n",
			`{dir}/pipelock.yaml:5: dlp.patterns[0].validator: checksum validators are not supported`},
		{"audit mode", "mode: audit\n", `{dir}/pipelock.yaml:1: mode: audit mode blocks nothing`},
		{"enforce false", "enforce: false\n", `{dir}/pipelock.yaml:1: enforce: the built-in proxy always enforces`},
		{"version", "version: 2\n", `{dir}/pipelock.yaml:1: version: version 2 is not known`},
		{"ip_allowlist name", "ssrf:\n  ip_allowlist: [git.internal]\n", `{dir}/pipelock.yaml:2: ssrf.ip_allowlist[0]: "git.internal" is not an IP address or CIDR range`},
		{"syntax", "api_allowlist: [a.com\n", `{dir}/pipelock.yaml:1: YAML syntax error`},
		{"not a mapping", "- a\n", `{dir}/pipelock.yaml:1: must be a mapping`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"pipelock.yaml": tt.policy})
			_, err := Parse("bottle.yaml", []byte(egressHead+"    egress: {policy_file: pipelock.yaml}\n"), dir)
			var first *Error
			if !errors.As(err, &first) {
				t.Fatalf("Parse error = %v, want an *Error", err)
			}
			want := strings.ReplaceAll(tt.want, "{dir}", dir)
			if !strings.HasPrefix(first.Error(), want) {
				t.Errorf("first problem:\n got %s\nwant %s...", first, want)
			}
		})
	}
}

func TestPolicyFileProblemsSortWithTheLineThatNamesIt(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"p.yaml": "bogus: 1\n"})
	y := "agents:\n  a: {bottle: web}\nbottles:\n  web:\n    image: x\n    egress: {policy_file: p.yaml}\n    runtime: gvisor\n"
	_, err := Parse("bottle.yaml", []byte(y), dir)
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], dir+"/p.yaml:1: bogus:") || !strings.HasPrefix(lines[1], "bottle.yaml:7: bottles.web.runtime:") {
		t.Errorf("problems:\n%s", err)
	}
}

// egress.ask and egress.ask_timeout: asking is on with 30 s unless the
// manifest says otherwise, and a bad value names the file, line and field.
func TestEgressAskAndAskTimeout(t *testing.T) {
	tests := []struct {
		name, egress string
		ask          bool
		timeout      time.Duration
		wantErr      string
	}{
		{"defaults", "{allow: [a.com]}", true, 30 * time.Second, ""},
		{"ask off", "{ask: false}", false, 30 * time.Second, ""},
		{"timeout", "{ask_timeout: 2m}", true, 2 * time.Minute, ""},
		{"lowest timeout", "{ask_timeout: 1s}", true, time.Second, ""},
		{"ask not a bool", "{ask: maybe}", false, 0, `bottle.yaml:6: bottles.web.egress.ask: must be true or false`},
		{"timeout not a duration", "{ask_timeout: 30}", false, 0, `bottle.yaml:6: bottles.web.egress.ask_timeout: "30" is not a duration`},
		{"timeout too short", "{ask_timeout: 500ms}", false, 0, `bottle.yaml:6: bottles.web.egress.ask_timeout: must be from 1s to 10m0s, got 500ms`},
		{"timeout too long", "{ask_timeout: 1h}", false, 0, `bottle.yaml:6: bottles.web.egress.ask_timeout: must be from 1s to 10m0s, got 1h0m0s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse("bottle.yaml", []byte(egressHead+"    egress: "+tt.egress+"\n"), t.TempDir())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e := m.Bottles["web"].Egress; e.Ask != tt.ask || e.AskTimeout != tt.timeout {
				t.Errorf("ask = %v, ask_timeout = %v; want %v, %v", e.Ask, e.AskTimeout, tt.ask, tt.timeout)
			}
		})
	}
}

// The protocol's bottle/allow checks entries with the manifest's own
// check: what it accepts is the canonical form the proxy matches.
func TestAllowEntryIsTheManifestsCheck(t *testing.T) {
	if got, err := AllowEntry("GitHub.com:0443"); err != nil || got != "github.com:443" {
		t.Errorf("AllowEntry = %q, %v; want github.com:443", got, err)
	}
	if _, err := AllowEntry("https://github.com/x"); err == nil || !strings.Contains(err.Error(), `"https://github.com/x" is a URL`) {
		t.Errorf("AllowEntry(URL) error = %v, want it to name the entry", err)
	}
}
