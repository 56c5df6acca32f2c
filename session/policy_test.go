package session_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/session"
)

// waitControl waits until the bottle's proxy has been told n lines.
func waitControl(t *testing.T, bt *fakeBottle, n int) []string {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		got := bt.controlLines()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy was told %q, want %d lines", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Each answer becomes control lines in the contract's order: allowSession
// puts host:port on the allowlist (the policy line, naming the approval)
// before the answer that lets the held connection through, and the
// session's list shows it; allowOnce and deny only answer.
func TestAnAnswerBecomesPolicyThenAnswer(t *testing.T) {
	tests := []struct {
		answer    string
		want      []string
		wantAllow []string
	}{
		{session.AllowSession, []string{"policy a.test,github.com:443 b.test approval", "answer 7 true"}, []string{"a.test", "github.com:443"}},
		{session.AllowOnce, []string{"answer 7 true"}, []string{"a.test"}},
		{session.Deny, []string{"answer 7 false"}, []string{"a.test"}},
		{"maybe", []string{"answer 7 false"}, []string{"a.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.answer, func(t *testing.T) {
			be := &fakeBackend{}
			r, ev := newRegistry(t, be, 0)
			ev.answer = tt.answer
			s := start(t, r, ev)
			be.bottles[0].onEgress(egress.Record{Event: egress.EventAsk, ID: 7, Method: "CONNECT", Host: "GitHub.com", Port: 443})
			if got := waitControl(t, be.bottles[0], len(tt.want)); !slices.Equal(got, tt.want) {
				t.Errorf("the proxy was told %q, want %q", got, tt.want)
			}
			if got := s.Snapshot(nil).Allow; !slices.Equal(got, tt.wantAllow) {
				t.Errorf("allowlist = %q, want %q", got, tt.wantAllow)
			}
			if q := ev.questions(); !slices.Equal(q, []string{s.ID() + " GitHub.com:443"}) {
				t.Errorf("asked %q", q)
			}
		})
	}
}

// A user who does not answer within the bottle's ask timeout is a deny,
// whatever the answer that comes after.
func TestAnAskWithoutAnAnswerInTimeIsDenied(t *testing.T) {
	be := &fakeBackend{askTimeout: 100 * time.Millisecond}
	r, ev := newRegistry(t, be, 0)
	start(t, r, ev)
	begin := time.Now()
	be.bottles[0].onEgress(egress.Record{Event: egress.EventAsk, ID: 2, Method: "CONNECT", Host: "x.test", Port: 443})
	if got := waitControl(t, be.bottles[0], 1); !slices.Equal(got, []string{"answer 2 false"}) {
		t.Errorf("the proxy was told %q, want a deny", got)
	}
	if d := time.Since(begin); d < 100*time.Millisecond {
		t.Errorf("denied after %v, before the ask timeout", d)
	}
}

// Allow and Disallow change the list in canonical entries, tell the proxy
// the whole new lists with the client, and say nothing when nothing
// changes.
func TestAllowAndDisallowTellTheProxyTheWholeList(t *testing.T) {
	be := &fakeBackend{}
	r, ev := newRegistry(t, be, 0)
	s := start(t, r, ev)
	ctx := context.Background()
	got, err := s.Allow(ctx, []string{"c.test", "a.test"}, "editor")
	if err != nil || !slices.Equal(got, []string{"a.test", "c.test"}) {
		t.Fatalf("Allow = %q, %v", got, err)
	}
	got, err = s.Disallow(ctx, []string{"a.test", "nope.test"}, "editor")
	if err != nil || !slices.Equal(got, []string{"c.test"}) {
		t.Fatalf("Disallow = %q, %v", got, err)
	}
	if _, err := s.Disallow(ctx, []string{"nope.test"}, "editor"); err != nil {
		t.Fatal(err)
	}
	want := []string{"policy a.test,c.test b.test editor", "policy c.test b.test editor"}
	if got := be.bottles[0].controlLines(); !slices.Equal(got, want) {
		t.Errorf("the proxy was told %q, want %q", got, want)
	}
}
