package dockerbottle_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/dockerbottle"
)

// TestAnotherAgentCLIRunsByManifestAlone: an agent whose profile the
// manifest defines gets its prompt in the profile's variable, its host
// variable under the profile's name (and the proxy refuses to let it out),
// its skills in the profile's folder and the profile's allowlist; nothing
// of Claude Code's is provisioned.
func TestAnotherAgentCLIRunsByManifestAlone(t *testing.T) {
	needEngine(t)
	t.Parallel()
	const key = "echoer-key-5d1c7a90e2"
	env.set(t, "ECHOER_BOTTLE_KEY", key)
	m := parseManifest(t, fmt.Sprintf(`
profiles:
  echoer:
    command: [sh, -c, 'printf "%%s|%%s|%%s" "$ECHOER_PROMPT" "$ECHOER_KEY" "$#"', echoer]
    prompt: {via: env, var: ECHOER_PROMPT}
    secrets: [{host: ECHOER_BOTTLE_KEY, agent: ECHOER_KEY}]
    allow: [upstream.test]
    skills_dir: ~/.echoer/skills
agents:
  echo:
    bottle: plain
    profile: echoer
    prompt: hello from the manifest
    skills: [skills/style]
bottles:
  plain:
    image: %s
    runtime: %s
    egress: {trusted: [upstream.test]}
`, baseImage, dockerbottle.RuntimeRunc), map[string]string{"skills/style/SKILL.md": "# style\n"})
	spec := backend.StartSpec{Manifest: m, Agent: "echo"}
	plan, err := engine.Plan(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(plan.Allow, []string{"upstream.test"}) {
		t.Errorf("plan's allowlist = %q, want the profile's [upstream.test]", plan.Allow)
	}
	bt := startBottle(t, spec)

	if got := runAgent(t, bt, ""); got != "hello from the manifest|"+key+"|0" {
		t.Errorf("the agent saw %q, want its prompt, its key and no arguments", got)
	}
	// The variables are the agent's own process's: another exec gets the
	// key (a secret of the profile), not the prompt.
	if got := mustRun(t, bt, "sh", "-c", `printf "%s|%s" "$ECHOER_PROMPT" "$ECHOER_KEY"`); got != "|"+key {
		t.Errorf("another exec saw %q", got)
	}
	out := mustRun(t, bt, "sh", "-c", `stat -c "%U:%G %a %n" /home/node/.echoer /home/node/.echoer/skills/style/SKILL.md; ls -A /home/node`)
	if want := "node:node 755 /home/node/.echoer\nnode:node 644 /home/node/.echoer/skills/style/SKILL.md\n"; !strings.HasPrefix(out, want) {
		t.Errorf("skills:\n%s\nwant them in the profile's folder:\n%s", out, want)
	}
	if strings.Contains(out, ".claude") {
		t.Errorf("Claude Code's prompt or skills were provisioned for another CLI:\n%s", out)
	}

	startNetprobe(t, bt.Info().Session, "upstream.test")
	if got := mustRun(t, bt, "curl", "-sS", "--max-time", "20", "http://upstream.test/clean"); got != "netprobe: GET /clean\n" {
		t.Errorf("the profile's allowlist does not let the agent reach upstream.test: %q", got)
	}
	got := mustRun(t, bt, "sh", "-c", `curl -sS --max-time 20 "http://upstream.test/?k=$ECHOER_KEY"`)
	if want := "(rule dlp:secret:ECHOER_KEY)"; !strings.Contains(got, want) || strings.Contains(got, key) {
		t.Errorf("a request carrying the profile's secret: %q, want a refusal naming %s and not the value", got, want)
	}
}

// TestTheShellProfilesAgentSeesItsPromptInAVariable: the built-in shell
// profile runs bash with the prompt in $BOTTLE_PROMPT.
func TestTheShellProfilesAgentSeesItsPromptInAVariable(t *testing.T) {
	needEngine(t)
	t.Parallel()
	m := parseManifest(t, fmt.Sprintf(`
agents:
  sh: {bottle: plain, profile: shell, prompt: "list the files, then stop"}
bottles:
  plain: {image: %s, runtime: %s}
`, baseImage, dockerbottle.RuntimeRunc), nil)
	bt := startBottle(t, backend.StartSpec{Manifest: m, Agent: "sh"})
	if got := runAgent(t, bt, `printf '%s|%s' "$BOTTLE_PROMPT" "$0"`+"\n"); got != "list the files, then stop|bash" {
		t.Errorf("the shell agent saw %q", got)
	}
}

// runAgent execs the agent's own command (no argv), without a TTY, gives
// it input and returns its output.
func runAgent(t *testing.T, bt backend.Bottle, input string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := bt.Exec(ctx, backend.ExecSpec{})
	if err != nil {
		t.Fatalf("exec of the agent: %v", err)
	}
	defer p.Close()
	if _, err := io.WriteString(p, input); err != nil {
		t.Fatalf("writing to the agent: %v", err)
	}
	p.CloseInput()
	out, err := io.ReadAll(p)
	if err != nil {
		t.Fatalf("reading the agent's output: %v", err)
	}
	if code, err := p.Wait(ctx); err != nil || code != 0 {
		t.Fatalf("the agent exited %d (%v): %s", code, err, out)
	}
	return string(out)
}
