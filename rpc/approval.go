package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/manifest"
	"github.com/bottle-dev/bottle/session"
)

// clientName is how policy records name a client: clientInfo's name and
// version, or "client" when it gave none.
func clientName(ci *ClientInfo) string {
	switch {
	case ci == nil || ci.Name == "":
		return "client"
	case ci.Version == "":
		return ci.Name
	}
	return ci.Name + " " + ci.Version
}

// askApproval sends bottle/egressApproval to the client, which declared
// the capability (see Ask), and returns its decision. It runs on the
// session's goroutine for the question, never on the connection's read
// goroutine, which must go on reading to deliver the answer. Every failure
// is a deny: an error response, a result that is not one of the three
// decisions, the client going away, or ctx ending (the ask timeout).
func (c *conn) askApproval(ctx context.Context, q egress.Record) string {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Pending calls are not failed when the peer goes: stop waiting then.
	go func() {
		select {
		case <-c.conn.Done():
		case <-c.w.failed:
		case <-ctx.Done():
		}
		cancel()
	}()
	params := EgressApprovalParams{Session: q.Session, Method: q.Method, Host: q.Host, Port: q.Port}
	var raw json.RawMessage
	if _, err := c.conn.Call(ctx, MethodEgressApproval, params, &raw); err != nil {
		c.log.Info("egress approval: denied, no answer", "session", q.Session, "host", q.Host, "port", q.Port, "err", err)
		return session.Deny
	}
	var res EgressApprovalResult
	if err := json.Unmarshal(raw, &res); err != nil || !slices.Contains([]string{ApprovalAllowOnce, ApprovalAllowSession, ApprovalDeny}, res.Decision) {
		c.logMessage(MessageWarning, fmt.Sprintf("%s: the answer %s is not {\"decision\": \"allowOnce\" | \"allowSession\" | \"deny\"}; the connection to %s:%d is refused",
			MethodEgressApproval, truncate(string(raw), 200), q.Host, q.Port))
		return session.Deny
	}
	return map[string]string{
		ApprovalAllowOnce:    session.AllowOnce,
		ApprovalAllowSession: session.AllowSession,
		ApprovalDeny:         session.Deny,
	}[res.Decision]
}

// truncate cuts s to at most n bytes, for a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// allowEntries checks bottle/allow's and bottle/disallow's entries with the
// manifest's own check and returns them in canonical form; one bad entry
// fails the whole request, naming it.
func allowEntries(sessionID string, entries []string) ([]string, error) {
	if sessionID == "" {
		return nil, invalidParams("session", "give the session id from bottle/start", "session is required")
	}
	if len(entries) == 0 {
		return nil, invalidParams("entries", "give at least one entry, like github.com or github.com:22", "entries is required")
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		c, err := manifest.AllowEntry(e)
		if err != nil {
			return nil, invalidParams("entries", "write host, *.domain, host:port, *.domain:port or host:*, as in bottle.yaml", "entries: %v", err)
		}
		out = append(out, c)
	}
	return out, nil
}

func (c *conn) allow(ctx context.Context, p *AllowParams) (*AllowlistResult, error) {
	return c.changeAllowlist(ctx, p.Session, p.Entries, (*session.Session).Allow)
}

func (c *conn) disallow(ctx context.Context, p *DisallowParams) (*AllowlistResult, error) {
	return c.changeAllowlist(ctx, p.Session, p.Entries, (*session.Session).Disallow)
}

// changeAllowlist checks the entries, then applies change to the session's
// live allowlist and answers with the list after it.
func (c *conn) changeAllowlist(ctx context.Context, id string, entries []string,
	change func(*session.Session, context.Context, []string, string) ([]string, error)) (*AllowlistResult, error) {
	entries, err := allowEntries(id, entries)
	if err != nil {
		return nil, err
	}
	sess, err := c.reg.Get(id)
	if err != nil {
		return nil, err
	}
	list, err := change(sess, ctx, entries, c.clientName())
	if err != nil {
		return nil, err
	}
	return &AllowlistResult{Allow: nonNil(list)}, nil
}

func (c *conn) clientName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client
}
