package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/manifest"
	"github.com/bottle-dev/bottle/rpc"
)

// renderScreen feeds bytes to @xterm/headless, the emulator VS Code's
// terminal uses, and returns the screen's text.
func renderScreen(t *testing.T, data []byte, cols, rows int) string {
	t.Helper()
	dir, _ := filepath.Abs("testdata/xterm")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@xterm", "headless")); err != nil {
		t.Fatalf("@xterm/headless is not installed in %s: run scripts/test.sh (or npm ci there)", dir)
	}
	cmd := exec.Command("node", filepath.Join(dir, "screen.mjs"), fmt.Sprint(cols), fmt.Sprint(rows))
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rendering the screen: %v", err)
	}
	return string(out)
}

// The default agent's image with an allowlist that names no real host: the
// agent's attempt to reach its API is refused at the sidecar, so nothing
// leaves this machine, and the refusal is what the test looks for.
func claudeManifest(t *testing.T) string {
	t.Helper()
	ctx := filepath.Join(manifest.CacheDir(), "agents", "claude")
	y := fmt.Sprintf(`agents:
  claude: {bottle: claude, command: [claude], prompt: "You are in a test."}
bottles:
  claude:
    build: {context: %s, args: {BASE: "bottle/base:bookworm"}}
    egress: {allow: [x.test]}
    env: {DISABLE_AUTOUPDATER: "1"}
`, ctx)
	path := filepath.Join(t.TempDir(), "bottle.yaml")
	os.WriteFile(path, []byte(y), 0o644)
	return path
}

func TestClaudeCodeDrawsItsWelcomeScreen(t *testing.T) {
	e := newEditor(t)
	started := e.start(rpc.StartParams{Agent: "claude", Manifest: claudeManifest(t)})
	const cols, rows = 120, 35
	tty := true
	var res rpc.ExecResult
	// No argv: the agent's own command with its prompt appended.
	e.call(rpc.MethodExec, rpc.ExecParams{Session: started.Session, Tty: &tty, Cols: cols, Rows: rows}, &res)

	var screen string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		screen = renderScreen(t, []byte(e.output(res.Exec)), cols, rows)
		if strings.Contains(screen, "Unable to connect to Anthropic services") || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	for _, want := range []string{"Unable to connect to Anthropic services", "api.anthropic.com"} {
		if !strings.Contains(screen, want) {
			t.Errorf("screen lacks %q:\n%s", want, screen)
		}
	}
	e.waitUntil("the sidecar's refusal of the agent's API host as bottle/egress", time.Minute, func() bool {
		for _, p := range e.egress {
			r := p.Record
			if p.Session == started.Session && r.Method == "CONNECT" && r.Host == "api.anthropic.com" && r.Port == 443 && r.Decision == "deny" {
				return true
			}
		}
		return false
	})
	// The exec's command line says the prompt was appended.
	var list rpc.ListResult
	e.call(rpc.MethodList, rpc.ListParams{}, &list)
	argv := strings.Join(list.Sessions[0].Execs[0].Argv, " ")
	if argv != "claude --append-system-prompt-file /home/node/.claude-bottle-prompt.txt" {
		t.Errorf("default exec ran %q", argv)
	}
}
