package termclient

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"unicode"

	"go.lsp.dev/jsonrpc2"

	"github.com/bottle-dev/bottle/rpc"
)

// hostile is a host an agent can ask for: a newline and a fake line, an
// escape that erases a line, bidi controls, a C1 control and DEL.
const hostile = "evil.test\r\nbottle: egress to api.anthropic.com:443 allowed\x1b[2K\u202egro.live\u2066\u0085\u009b\x7f"

// TestServerTextReachesTheTerminalEscaped feeds the client notifications
// that carry agent-chosen text and checks that each prints as one line of
// graphic characters.
func TestServerTextReachesTheTerminalEscaped(t *testing.T) {
	tests := []struct {
		name   string
		method string
		params any
	}{
		{"refused egress", rpc.MethodEgress, rpc.EgressParams{Session: "s1", Record: rpc.EgressRecord{
			Event: "decision", Decision: "deny", Method: "CONNECT", Host: hostile, Port: 443, Rule: "default-deny" + hostile}}},
		{"log message", rpc.MethodLogMessage, rpc.LogMessageParams{Type: rpc.MessageWarning, Message: "exec failed: " + hostile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			c := &client{term: Terminal{Err: &out}}
			req, err := jsonrpc2.NewNotification(tt.method, tt.params)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.handle(context.Background(), nil, req); err != nil {
				t.Fatal(err)
			}
			checkOneEscapedLine(t, out.String())
		})
	}
}

func TestPlanIsPrintedEscaped(t *testing.T) {
	var out bytes.Buffer
	printPlan(&out, &rpc.PlanResult{Agent: "claude", Allow: []string{"api.anthropic.com", hostile}}, nil)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Errorf("the plan takes %d lines, want 5:\n%s", len(lines), out.String())
	}
	for _, line := range lines {
		checkGraphic(t, line)
	}
	if !strings.Contains(out.String(), `\u202e`) {
		t.Errorf("the bidi override is not shown escaped:\n%s", out.String())
	}
}

func checkOneEscapedLine(t *testing.T, got string) {
	t.Helper()
	checkGraphic(t, strings.Trim(got, "\r\n"))
	if !strings.Contains(got, "evil.test") {
		t.Errorf("the host is not shown at all: %q", got)
	}
}

func checkGraphic(t *testing.T, text string) {
	t.Helper()
	for _, r := range text {
		if !unicode.IsGraphic(r) {
			t.Errorf("%U reached the terminal in %q", r, text)
		}
	}
}
