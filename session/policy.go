package session

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/manifest"
)

// Decisions Events.Ask returns.
const (
	AllowOnce    = "allowOnce"
	AllowSession = "allowSession"
	Deny         = "deny"
)

// ApprovalClient is the client named in the audit when an answer
// allowSession changes the allowlist.
const ApprovalClient = "approval"

// askWatchers puts q to the attached watchers, the latest attached first,
// until one can ask; none that can is a deny.
func (s *Session) askWatchers(ctx context.Context, q egress.Record) string {
	ws := s.attached()
	for i := len(ws) - 1; i >= 0; i-- {
		if d, asked := ws[i].Ask(ctx, q); asked {
			return d
		}
	}
	return Deny
}

// answerTimeout bounds the delivery of an answer to the proxy, after the
// question itself may have used the whole ask timeout.
const answerTimeout = 10 * time.Second

// Allow adds entries (in the manifest's canonical form, see
// manifest.AllowEntry) to the live allowlist and returns the list after
// the change. client names who asked, for the proxy's audit record.
// Entries already on the list change nothing and send nothing.
func (s *Session) Allow(ctx context.Context, entries []string, client string) ([]string, error) {
	return s.changeAllow(ctx, client, func(cur []string) []string {
		next := slices.Clone(cur)
		for _, e := range entries {
			if !slices.Contains(next, e) {
				next = append(next, e)
			}
		}
		return next
	})
}

// Disallow takes entries off the live allowlist (an entry not on it is no
// error) and returns the list after the change; tunnels already open stay.
func (s *Session) Disallow(ctx context.Context, entries []string, client string) ([]string, error) {
	return s.changeAllow(ctx, client, func(cur []string) []string {
		return slices.DeleteFunc(slices.Clone(cur), func(e string) bool { return slices.Contains(entries, e) })
	})
}

// changeAllow applies change to the allowlist: the proxy first, then the
// list here, so the list never claims what the proxy does not enforce.
func (s *Session) changeAllow(ctx context.Context, client string, change func([]string) []string) ([]string, error) {
	b, err := s.ready()
	if err != nil {
		return nil, err
	}
	s.policyMu.Lock()
	defer s.policyMu.Unlock()
	s.mu.Lock()
	live, cur, block := s.info.LivePolicy, s.allow, s.block
	s.mu.Unlock()
	if !live {
		return nil, fmt.Errorf("session %s: %w", s.id, backend.ErrPolicyFixed)
	}
	next := change(cur)
	if slices.Equal(next, cur) {
		return slices.Clone(cur), nil
	}
	if err := b.SetPolicy(ctx, next, block, client); err != nil {
		s.checkGone(err)
		return nil, fmt.Errorf("change the egress policy of session %s: %w", s.id, err)
	}
	s.mu.Lock()
	s.allow = next
	s.mu.Unlock()
	return slices.Clone(next), nil
}

// ask puts the proxy's question q to the user through Events.Ask, bounded
// by the bottle's ask timeout and the session's life, and answers it as
// the user decided: allowSession adds host:port to the allowlist first,
// on the same control channel, so the proxy applies it before the answer.
// Anything but an allow is a deny.
func (s *Session) ask(q egress.Record) {
	<-s.started
	b, err := s.ready()
	if err != nil {
		return // the proxy refuses what it holds when the bottle goes
	}
	timeout := s.Info().AskTimeout
	if timeout <= 0 {
		timeout = egress.DefaultAskTimeout
	}
	ctx, cancel := context.WithTimeout(s.life, timeout)
	decision := s.askWatchers(ctx, q)
	if ctx.Err() != nil {
		decision = Deny // an answer after the time ran out changes nothing
	}
	cancel()
	if s.life.Err() != nil {
		return // closing: the proxy refuses what it holds once its control channel ends
	}

	actx, acancel := context.WithTimeout(context.WithoutCancel(s.life), answerTimeout)
	defer acancel()
	allow := false
	switch decision {
	case AllowOnce:
		allow = true
	case AllowSession:
		entry, err := manifest.AllowEntry(net.JoinHostPort(q.Host, strconv.Itoa(q.Port)))
		if err == nil {
			_, err = s.Allow(actx, []string{entry}, ApprovalClient)
		}
		if err != nil {
			s.r.log.Warn("an approval for the session could not be added to the allowlist; letting this connection through only",
				"session", s.id, "host", q.Host, "port", q.Port, "err", err)
		}
		allow = true
	}
	if err := b.Answer(actx, q.ID, allow); err != nil {
		s.r.log.Warn("answering the egress proxy", "session", s.id, "id", q.ID, "err", err)
	}
}
