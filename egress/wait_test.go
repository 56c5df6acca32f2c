package egress

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/internal/testwait"
)

// A waiting proxy (a bottle made ahead of time) refuses every request and
// every control line but configure; configure brings the whole config,
// secrets included, once.
func TestWaitingProxyRefusesEverythingUntilConfigured(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	target, _ := hostPort(t, upstream.URL)
	ctlR, ctlW := io.Pipe()
	t.Cleanup(func() { ctlW.Close() })
	addr, _, _, audit := startRunControlled(t, Config{Listen: "127.0.0.1:0", Session: "pool-1", Wait: true}, ctlR, defaultLimits)
	send := func(c Control) {
		t.Helper()
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ctlW.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	policyRecords := func() []Record {
		var out []Record
		for _, r := range audit.records(t) {
			if r.Event == EventPolicy {
				out = append(out, r)
			}
		}
		return out
	}
	status := func() int {
		t.Helper()
		client := proxyClient(addr, &http.Transport{})
		defer client.CloseIdleConnections()
		resp, err := client.Get(upstream.URL)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		return resp.StatusCode
	}
	tunnel := func() int {
		t.Helper()
		c, _, resp := rawRequest(t, addr, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n", http.MethodConnect)
		c.Close()
		return resp.StatusCode
	}

	if got := status(); got != http.StatusForbidden {
		t.Fatalf("plain request before configure: %d, want 403", got)
	}
	if got := tunnel(); got != http.StatusForbidden {
		t.Fatalf("CONNECT before configure: %d, want 403", got)
	}
	// A policy line cannot open a waiting proxy: only configure can, with
	// DLP and trust along.
	send(Control{Op: OpPolicy, Allow: []string{"*"}, Client: "sneaky"})
	send(Control{Op: OpAnswer, ID: 1, Decision: DecisionAllow})
	bad := Config{Allow: []string{"https://nope"}}
	send(Control{Op: OpConfigure, Config: &bad, Client: "warm-start"})
	testwait.Until(t, "the refused configure's audit record", 5*time.Second, func() bool { return len(policyRecords()) == 1 })
	if r := policyRecords()[0]; r.Decision != DecisionDeny || r.Session != "pool-1" || r.Client != "warm-start" {
		t.Fatalf("refused configure audited as %+v", r)
	}
	if got := status(); got != http.StatusForbidden {
		t.Fatalf("plain request after a policy line and a bad configure: %d, want 403", got)
	}

	cfg := Config{Session: "s-taken", Allow: []string{target}, Trusted: []string{"127.0.0.0/8"},
		DLP: DLPConfig{Secrets: []Secret{{Name: "TOKEN", Value: "supersecretvalue"}}}}
	send(Control{Op: OpConfigure, Config: &cfg, Client: "warm-start"})
	testwait.Until(t, "the configure's audit record", 5*time.Second, func() bool { return len(policyRecords()) == 2 })
	rec := policyRecords()[1]
	if rec.Decision != DecisionAllow || rec.Session != "s-taken" || rec.Client != "warm-start" || !strings.Contains(rec.Change, "+"+target) {
		t.Fatalf("configure audited as %+v", rec)
	}
	if got := status(); got != http.StatusOK {
		t.Fatalf("allowlisted request after configure: %d, want 200", got)
	}
	client := proxyClient(addr, &http.Transport{})
	defer client.CloseIdleConnections()
	resp, err := client.Get(upstream.URL + "/?t=supersecretvalue")
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("request carrying the configured secret: %d, want 403 (DLP)", resp.StatusCode)
	}
	// Configured once: a second configure cannot replace DLP or trust.
	open := Config{Allow: []string{"*"}}
	send(Control{Op: OpConfigure, Config: &open, Client: "again"})
	testwait.Until(t, "the second configure's refusal", 5*time.Second, func() bool { return len(policyRecords()) == 3 })
	if r := policyRecords()[2]; r.Decision != DecisionDeny || r.Client != "again" {
		t.Fatalf("second configure audited as %+v", r)
	}
	// Policy lines work once configured.
	send(Control{Op: OpPolicy, Allow: nil, Client: "editor"})
	testwait.Until(t, "the policy change", 5*time.Second, func() bool { return len(policyRecords()) == 4 })
	if got := status(); got != http.StatusForbidden {
		t.Fatalf("request after the allowlist was emptied: %d, want 403", got)
	}
}

func TestConfigureRefusedByAProxyThatDoesNotWait(t *testing.T) {
	ctlR, ctlW := io.Pipe()
	t.Cleanup(func() { ctlW.Close() })
	_, _, _, audit := startRunControlled(t, Config{Listen: "127.0.0.1:0", Session: "s"}, ctlR, defaultLimits)
	b, _ := json.Marshal(Control{Op: OpConfigure, Config: &Config{Allow: []string{"*"}}, Client: "x"})
	if _, err := ctlW.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, "the configure's refusal", 5*time.Second, func() bool {
		for _, r := range audit.records(t) {
			if r.Event == EventPolicy {
				return r.Decision == DecisionDeny
			}
		}
		return false
	})
}

func TestWaitingConfigWithAPolicyIsRefused(t *testing.T) {
	for _, cfg := range []Config{
		{Wait: true, Allow: []string{"a.test"}},
		{Wait: true, Block: []string{"a.test"}},
		{Wait: true, Ask: true},
	} {
		if _, err := cfg.options(); err == nil || !strings.Contains(err.Error(), "waiting") {
			t.Errorf("options(%+v) = %v, want a refusal", cfg, err)
		}
	}
}
