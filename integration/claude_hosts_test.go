package integration

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/manifest"
	"github.com/bottle-dev/bottle/rpc"
)

// leftOutHeading is README.md's heading over the table of hosts the pinned
// Claude Code contacts that the built-in allowlist leaves out on purpose.
const leftOutHeading = "### Hosts left out of the built-in allowlist"

// leftOutHosts reads the first column of README.md's table of hosts left
// out on purpose: each row's entry in backquotes, in egress.allow syntax.
func leftOutHosts(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `([^`]+)` \\|")
	var hosts []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == leftOutHeading:
			in = true
		case in && strings.HasPrefix(line, "#"):
			in = false
		case in:
			if m := row.FindStringSubmatch(line); m != nil {
				hosts = append(hosts, m[1])
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(hosts) == 0 {
		t.Fatalf("README.md has no table under %q", leftOutHeading)
	}
	return hosts
}

// builtinAllow is the allowlist the built-in manifest gives the claude agent.
func builtinAllow(t *testing.T) []string {
	t.Helper()
	_, b, err := manifest.Default().Agent("claude")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Egress.Allow) == 0 {
		t.Fatal("the built-in manifest's claude bottle has no allowlist")
	}
	return b.Egress.Allow
}

// TestBuiltinAllowlistHasClaudeCodesDocumentedHosts: the hosts Claude
// Code's network requirements name (code.claude.com/docs/en/network-config:
// the API and both sign-ins) are on the built-in list.
func TestBuiltinAllowlistHasClaudeCodesDocumentedHosts(t *testing.T) {
	p, err := egress.NewPolicy(builtinAllow(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"api.anthropic.com", "claude.ai", "platform.claude.com"} {
		if ok, _, _ := p.DecideTunnel(host, 443); !ok {
			t.Errorf("the built-in allowlist does not let Claude Code reach %s:443", host)
		}
	}
}

// contacted is a host:port the agent tried and how it tried it.
type contacted struct {
	method string
	host   string
	port   int
}

// TestClaudeCodeContactsOnlyListedHosts runs the pinned Claude Code as the
// built-in manifest does, but behind an allowlist that names no real host:
// the sidecar refuses every connection, so nothing leaves this machine
// whatever its routes, and its audit names each host the agent tries. Each
// must be on the built-in allowlist or in README.md's table of hosts left
// out on purpose. It runs once as a new user and once signed in (a token
// that no server will ever see), which take different paths at startup.
func TestClaudeCodeContactsOnlyListedHosts(t *testing.T) {
	allow, err := egress.NewPolicy(builtinAllow(t))
	if err != nil {
		t.Fatal(err)
	}
	leftOut, err := egress.NewPolicy(leftOutHosts(t))
	if err != nil {
		t.Fatalf("README.md's table of hosts left out: %v", err)
	}
	listed := func(p *egress.Policy, c contacted) bool {
		if c.method == "CONNECT" {
			ok, _, _ := p.DecideTunnel(c.host, c.port)
			return ok
		}
		ok, _ := p.Decide(c.host, c.port)
		return ok
	}
	tests := []struct {
		name string
		env  []string
	}{
		{"new user", nil},
		{"signed in", []string{"CLAUDE_BOTTLE_OAUTH_TOKEN=sk-ant-oat01-" + strings.Repeat("x", 40)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hosts := claudeCodeHosts(t, tt.env)
			if len(hosts) == 0 {
				t.Fatal("Claude Code contacted no host at all: the test saw nothing")
			}
			for _, c := range hosts {
				inAllow, inLeftOut := listed(allow, c), listed(leftOut, c)
				t.Logf("%s %s:%d (built-in list %v, left out %v)", c.method, c.host, c.port, inAllow, inLeftOut)
				if !inAllow && !inLeftOut {
					t.Errorf("Claude Code contacted %s:%d (%s), which is neither on the built-in allowlist nor in README.md's table under %q",
						c.host, c.port, c.method, leftOutHeading)
				}
			}
		})
	}
}

// claudeCodeHosts runs Claude Code with the built-in prompt and returns
// each host it tried, once it has tried none new for quiet, or after at
// most limit.
func claudeCodeHosts(t *testing.T, env []string) []contacted {
	const limit, quiet = 60 * time.Second, 20 * time.Second
	e := newEditor(t, env...)
	started := e.start(rpc.StartParams{Agent: "claude", Manifest: claudeManifest(t)})
	tty := true
	var res rpc.ExecResult
	e.call(rpc.MethodExec, rpc.ExecParams{Session: started.Session, Tty: &tty, Cols: 120, Rows: 35}, &res)

	seen := map[contacted]bool{}
	var order []contacted
	begin, last := time.Now(), time.Now()
	for time.Since(begin) < limit && (len(order) == 0 || time.Since(last) < quiet) {
		e.mu.Lock()
		for _, p := range e.egress {
			r := p.Record
			c := contacted{r.Method, r.Host, r.Port}
			if p.Session == started.Session && r.Event == "decision" && !seen[c] {
				seen[c] = true
				order = append(order, c)
				last = time.Now()
			}
		}
		e.mu.Unlock()
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%d hosts in %s", len(order), time.Since(begin).Round(time.Second))
	slices.SortFunc(order, func(a, b contacted) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return order
}

// TestRunAllowReachesTheLivePolicy runs "bottle-rpc run --allow" against
// the real server: the entry shows in the preflight, reaches the sidecar
// as a policy change (in the session's audit), and a host off the list is
// refused with the --allow that would lift it. The refused host is never
// resolved, so nothing leaves this machine.
func TestRunAllowReachesTheLivePolicy(t *testing.T) {
	cmd := serverCmd([]string{"run", "sh", "--manifest", writeManifest(t, "auto"), "--yes", "--allow", "extra.test:8443", "--",
		"sh", "-c", `curl -s -o /dev/null -w "code=%{http_code}\n" http://refused.test/; sleep 2`})
	// Input stays open: its end would hang up the agent's terminal.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bottle-rpc run: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"--allow:  extra.test:8443 (this session only)",
		"code=403",
		"egress to refused.test:80 refused (default-deny); to allow it next time: bottle-rpc run --allow refused.test:80",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("bottle-rpc run did not print %q:\n%s", want, text)
		}
	}
	m := regexp.MustCompile(`bottle ([0-9a-f]{8}) ready`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no session id in:\n%s", text)
	}
	audit, err := serverCmd([]string{"audit", m[1], "--json"}).Output()
	if err != nil {
		t.Fatalf("bottle-rpc audit %s: %v", m[1], err)
	}
	var policy bool
	for _, line := range strings.Split(string(audit), "\n") {
		policy = policy || strings.Contains(line, `"event":"policy"`) && strings.Contains(line, "extra.test:8443")
	}
	if !policy {
		t.Errorf("the session's audit has no policy change adding extra.test:8443:\n%s", audit)
	}
}
