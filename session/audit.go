package session

import (
	"log/slog"
	"sync"

	"github.com/bottle-dev/bottle/auditlog"
	"github.com/bottle-dev/bottle/egress"
)

// audit keeps a session's egress records in its file in the registry's
// audit folder. A folder that cannot be written is logged, not a reason to
// refuse a bottle: the records still reach the client.
type audit struct {
	session string
	log     *slog.Logger

	mu     sync.Mutex
	f      *auditlog.File // nil: nothing is kept
	failed bool           // a write failed and was logged
	closed bool
}

func newAudit(session string, log *slog.Logger) *audit {
	return &audit{session: session, log: log}
}

// open opens the session's audit file in dir; an empty dir keeps nothing.
// Opening prunes the folder's expired files, so it happens as a bottle
// starts.
func (a *audit) open(dir string) {
	if dir == "" {
		return
	}
	f, err := auditlog.Open(dir, a.session)
	if err != nil {
		a.log.Error("egress decisions are not kept on disk", "session", a.session, "dir", dir, "err", err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		f.Close()
		return
	}
	a.f = f
}

// write appends rec. A record that arrives after close (the proxy's last
// words as its bottle is removed) is not kept.
func (a *audit) write(rec egress.Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	if err := a.f.Write(rec); err != nil && !a.failed {
		a.failed = true
		a.log.Error("writing the egress audit; later records of this bottle may be missing from it", "session", a.session, "err", err)
	}
}

func (a *audit) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.closed = true
	if err := a.f.Close(); err != nil {
		a.log.Warn("closing the egress audit", "session", a.session, "err", err)
	}
}
