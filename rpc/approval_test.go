package rpc_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/rpc"
)

// initializeApprover does the handshake as a client that answers
// bottle/egressApproval.
func (h *harness) initializeApprover() {
	h.t.Helper()
	var res rpc.InitializeResult
	h.client.mustCall(rpc.MethodInitialize, rpc.InitializeParams{
		ClientInfo:   &rpc.ClientInfo{Name: "test", Version: "1"},
		Capabilities: &rpc.ClientCapabilities{EgressApproval: true},
	}, &res)
	h.client.notify(rpc.MethodInitialized, struct{}{})
}

// ask makes the session's proxy ask about host:443 with question id.
func (h *harness) ask(id uint64, host string) {
	h.be.Bottles()[0].Egress(egress.Record{Time: time.Now(), Event: egress.EventAsk, ID: id, Method: "CONNECT", Host: host, Port: 443})
}

// approvalRequests are the bottle/egressApproval requests the client got.
func (c *fakeClient) approvalRequests() []message {
	var out []message
	for _, m := range c.messages() {
		if m.Method == rpc.MethodEgressApproval {
			out = append(out, m)
		}
	}
	return out
}

// waitApproval waits for the n-th bottle/egressApproval (from 1).
func (c *fakeClient) waitApproval(n int) message {
	c.t.Helper()
	var req message
	c.waitFor(fmt.Sprintf("bottle/egressApproval #%d", n), func() bool {
		k := 0
		for _, m := range c.log {
			if m.Method == rpc.MethodEgressApproval {
				if k++; k == n {
					req = m
					return true
				}
			}
		}
		return false
	})
	return req
}

// answer responds to a server request with a raw result or error.
func (c *fakeClient) answer(req message, field string, value json.RawMessage) {
	c.t.Helper()
	c.writeMessage(map[string]any{"jsonrpc": "2.0", "id": req.ID, field: value})
}

// waitEvent waits for the backend to record want, and returns everything
// it recorded by then.
func (h *harness) waitEvent(want string) []string {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ev := h.be.Events()
		if slices.Contains(ev, want) {
			return ev
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the backend never recorded %q; it recorded %q", want, ev)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// controlEvents are the policy and answer lines the proxies got.
func controlEvents(ev []string) []string {
	return slices.DeleteFunc(slices.Clone(ev), func(e string) bool {
		return !strings.HasPrefix(e, "policy ") && !strings.HasPrefix(e, "answer ")
	})
}

// Each answer of a capable client reaches the proxy as the contract says:
// allowSession adds host:port to the allowlist before letting the held
// connection through, allowOnce only lets it through, and deny, an
// unknown decision, a result of another shape or an error response refuse
// it. The server goes on serving after each.
func TestEgressApprovalAnswersReachTheProxy(t *testing.T) {
	tests := []struct {
		name, field, value string
		want               []string
	}{
		{"allowSession", "result", `{"decision":"allowSession"}`, []string{
			"policy S allow=api.example.test,github.com:443 block=blocked.example.test client=approval", "answer S 7 true"}},
		{"allowOnce", "result", `{"decision":"allowOnce"}`, []string{"answer S 7 true"}},
		{"deny", "result", `{"decision":"deny"}`, []string{"answer S 7 false"}},
		{"unknown decision", "result", `{"decision":"always"}`, []string{"answer S 7 false"}},
		{"decision of another case", "result", `{"decision":"AllowOnce"}`, []string{"answer S 7 false"}},
		{"result not an object", "result", `"allowOnce"`, []string{"answer S 7 false"}},
		{"null result", "result", `null`, []string{"answer S 7 false"}},
		{"error response", "error", `{"code":-32603,"message":"the user closed the window"}`, []string{"answer S 7 false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, rpc.Options{})
			h.initializeApprover()
			sess := h.startSession()
			h.ask(7, "github.com")
			req := h.client.waitApproval(1)
			var p rpc.EgressApprovalParams
			if err := json.Unmarshal(req.Params, &p); err != nil {
				t.Fatal(err)
			}
			if want := (rpc.EgressApprovalParams{Session: sess, Method: "CONNECT", Host: "github.com", Port: 443}); p != want {
				t.Errorf("params = %+v, want %+v", p, want)
			}
			h.client.answer(req, tt.field, json.RawMessage(tt.value))
			last := strings.ReplaceAll(tt.want[len(tt.want)-1], "S", sess)
			got := controlEvents(h.waitEvent(last))
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = strings.Replace(w, " S ", " "+sess+" ", 1)
			}
			if !slices.Equal(got, want) {
				t.Errorf("the proxy got %q, want %q", got, want)
			}
			// The server goes on.
			var list rpc.ListResult
			h.client.mustCall(rpc.MethodList, rpc.ListParams{}, &list)
		})
	}
}

// A client that did not declare capabilities.egressApproval is never
// asked: the question is refused at once, not after the ask timeout.
func TestEgressApprovalIsNotSentToAClientWithoutTheCapability(t *testing.T) {
	h := newHarnessWith(t, &fakeBackend{askTimeout: time.Minute}, rpc.Options{})
	h.initialize()
	sess := h.startSession()
	start := time.Now()
	h.ask(3, "github.com")
	h.waitEvent("answer " + sess + " 3 false")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the refusal took %v, want it at once", d)
	}
	if reqs := h.client.approvalRequests(); len(reqs) != 0 {
		t.Errorf("the client was asked: %+v", reqs)
	}
}

// No answer within the bottle's ask timeout is a deny, and an answer
// that comes later changes nothing.
func TestEgressApprovalTimesOutAsDeny(t *testing.T) {
	h := newHarnessWith(t, &fakeBackend{askTimeout: 200 * time.Millisecond}, rpc.Options{})
	h.initializeApprover()
	sess := h.startSession()
	h.ask(4, "github.com")
	req := h.client.waitApproval(1)
	h.waitEvent("answer " + sess + " 4 false")
	h.client.answer(req, "result", json.RawMessage(`{"decision":"allowSession"}`))
	var list rpc.ListResult
	h.client.mustCall(rpc.MethodList, rpc.ListParams{}, &list)
	if got := controlEvents(h.be.Events()); !slices.Equal(got, []string{"answer " + sess + " 4 false"}) {
		t.Errorf("the proxy got %q, want one deny", got)
	}
}

// A client that goes away while a question is pending does not hold the
// server: it ends serving and removes the bottle (whose proxy refuses
// what it holds) well before the ask timeout.
func TestEgressApprovalPendingWhenTheClientDisconnects(t *testing.T) {
	h := newHarnessWith(t, &fakeBackend{askTimeout: time.Minute}, rpc.Options{})
	h.initializeApprover()
	sess := h.startSession()
	h.ask(5, "github.com")
	h.client.waitApproval(1)
	start := time.Now()
	h.in.Close()
	h.serveResult()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("serving ended %v after the disconnect", d)
	}
	ev := h.be.Events()
	if !slices.Contains(ev, "closed "+sess) {
		t.Errorf("the bottle was not closed: %q", ev)
	}
	if slices.Contains(ev, "answer "+sess+" 5 true") {
		t.Errorf("the held connection was let through: %q", ev)
	}
}

// Several questions are asked side by side: a client that answers the
// second first unblocks the second.
func TestEgressApprovalQuestionsDoNotWaitForEachOther(t *testing.T) {
	h := newHarness(t, rpc.Options{})
	h.initializeApprover()
	sess := h.startSession()
	h.ask(1, "a.test")
	h.client.waitApproval(1)
	h.ask(2, "b.test")
	second := h.client.waitApproval(2)
	h.client.answer(second, "result", json.RawMessage(`{"decision":"allowOnce"}`))
	h.waitEvent("answer " + sess + " 2 true")
}

// bottle/allow and bottle/disallow check every entry with the manifest's
// own parser before anything changes: a bad one is -32602 naming it, with
// field entries, and the proxy gets nothing. Good entries are changed in
// canonical form, the proxy hears of it naming the client, and
// bottle/list shows the live list.
func TestAllowAndDisallowChangeTheLiveAllowlist(t *testing.T) {
	h := newHarness(t, rpc.Options{})
	h.initializeApprover()
	sess := h.startSession()

	for _, bad := range [][]string{
		{"ok.test", "https://github.com/x"},
		{"github.com:99999"},
		{"a b"},
		{},
	} {
		for _, m := range []string{rpc.MethodAllow, rpc.MethodDisallow} {
			e := h.client.callErr(m, map[string]any{"session": sess, "entries": bad})
			checkError(t, m, e, -32602, rpc.KindInvalidParams)
			if e.Data.Field != "entries" {
				t.Errorf("%s %q: field = %q, want entries", m, bad, e.Data.Field)
			}
			if len(bad) > 0 && !strings.Contains(e.Message, bad[len(bad)-1]) {
				t.Errorf("%s %q: message %q does not name the entry", m, bad, e.Message)
			}
		}
	}
	if ev := controlEvents(h.be.Events()); len(ev) != 0 {
		t.Fatalf("a refused request changed the policy: %q", ev)
	}

	var res rpc.AllowlistResult
	h.client.mustCall(rpc.MethodAllow, rpc.AllowParams{Session: sess, Entries: []string{"GitHub.com:22", "*.example.org"}}, &res)
	want := []string{"api.example.test", "github.com:22", "*.example.org"}
	if !slices.Equal(res.Allow, want) {
		t.Errorf("allow = %q, want %q", res.Allow, want)
	}
	h.client.mustCall(rpc.MethodDisallow, rpc.DisallowParams{Session: sess, Entries: []string{"api.example.test", "not.listed.test"}}, &res)
	want = []string{"github.com:22", "*.example.org"}
	if !slices.Equal(res.Allow, want) {
		t.Errorf("after disallow, allow = %q, want %q", res.Allow, want)
	}
	// An entry already there, and one not there, change nothing.
	h.client.mustCall(rpc.MethodAllow, rpc.AllowParams{Session: sess, Entries: []string{"github.com:22"}}, &res)
	h.client.mustCall(rpc.MethodDisallow, rpc.DisallowParams{Session: sess, Entries: []string{"gone.test"}}, &res)
	wantEv := []string{
		"policy " + sess + " allow=api.example.test,github.com:22,*.example.org block=blocked.example.test client=test 1",
		"policy " + sess + " allow=github.com:22,*.example.org block=blocked.example.test client=test 1",
	}
	if ev := controlEvents(h.be.Events()); !slices.Equal(ev, wantEv) {
		t.Errorf("the proxy got %q, want %q", ev, wantEv)
	}
	var list rpc.ListResult
	h.client.mustCall(rpc.MethodList, rpc.ListParams{}, &list)
	if got := list.Sessions[0].Allow; !slices.Equal(got, want) {
		t.Errorf("bottle/list allow = %q, want %q", got, want)
	}

	e := h.client.callErr(rpc.MethodAllow, rpc.AllowParams{Session: "0badcafe", Entries: []string{"a.test"}})
	checkError(t, "unknown session", e, -32101, rpc.KindSessionNotFound)
}

// A bottle whose sidecar is the manifest's own cannot change its policy:
// -32602 says so, and bottle/list shows no live allowlist for it.
func TestAllowOnABottleWithItsOwnSidecarIsRefused(t *testing.T) {
	h := newHarnessWith(t, &fakeBackend{fixedPolicy: true}, rpc.Options{})
	h.initialize()
	sess := h.startSession()
	e := h.client.callErr(rpc.MethodAllow, rpc.AllowParams{Session: sess, Entries: []string{"a.test"}})
	checkError(t, "allow", e, -32602, rpc.KindInvalidParams)
	if !strings.Contains(e.Message, "sidecar") {
		t.Errorf("message %q does not say why", e.Message)
	}
	var list rpc.ListResult
	h.client.mustCall(rpc.MethodList, rpc.ListParams{}, &list)
	if got := list.Sessions[0].Allow; got != nil {
		t.Errorf("bottle/list allow = %q, want none", got)
	}
}

// An ask record reaches the client as bottle/egress too, with its id and
// decision "ask"; a policy record carries its change and client.
func TestAskAndPolicyRecordsOnTheWire(t *testing.T) {
	h := newHarness(t, rpc.Options{})
	h.initialize()
	h.startSession()
	h.ask(9, "github.com")
	h.be.Bottles()[0].Egress(egress.Record{Event: egress.EventPolicy, Decision: "allow", Change: "allow +a.test:443", Client: "test 1"})
	var got []rpc.EgressRecord
	h.client.waitFor("two egress notifications", func() bool {
		got = got[:0]
		for _, m := range h.client.log {
			if m.Method == rpc.MethodEgress {
				var p rpc.EgressParams
				json.Unmarshal(m.Params, &p)
				got = append(got, p.Record)
			}
		}
		return len(got) == 2
	})
	if r := got[0]; r.Event != "ask" || r.ID != 9 || r.Decision != "ask" || r.Host != "github.com" {
		t.Errorf("ask record = %+v", r)
	}
	if r := got[1]; r.Event != "policy" || r.Change != "allow +a.test:443" || r.Client != "test 1" {
		t.Errorf("policy record = %+v", r)
	}
}
