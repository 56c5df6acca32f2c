package dockerbottle

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// DefaultAuditDir is where bottles' audit logs are kept, one JSON line per
// egress decision in SESSION.jsonl: $BOTTLE_STATE/audit, else
// $XDG_STATE_HOME/bottle/audit, else ~/.local/state/bottle/audit. They
// outlive their bottles (bottle-rpc audit SESSION reads them); files older
// than AuditRetention are removed when a bottle starts.
func DefaultAuditDir() string {
	if dir := os.Getenv("BOTTLE_STATE"); dir != "" {
		return filepath.Join(dir, "audit")
	}
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		state = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(state, "bottle", "audit")
}

// AuditRetention is how long audit files are kept.
const AuditRetention = 30 * 24 * time.Hour

// safeSession is what a session id must look like to name a file.
var safeSession = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// AuditPath is the audit file of session in dir, or "" when the session id
// cannot name a file.
func AuditPath(dir, session string) string {
	if !safeSession.MatchString(session) {
		return ""
	}
	return filepath.Join(dir, session+".jsonl")
}

// AuditDir is where this engine keeps audit files.
func (e *Engine) AuditDir() string { return e.auditDir }

// auditFile appends a session's audit lines to its file. A nil *auditFile
// writes nothing: the records still reach clients, and an unwritable state
// folder is logged, not a reason to refuse a bottle.
type auditFile struct {
	mu sync.Mutex
	f  *os.File
}

func (e *Engine) openAudit(session string) *auditFile {
	if e.auditDir == "" {
		return nil
	}
	path := AuditPath(e.auditDir, session)
	if path == "" {
		e.log.Warn("session id cannot name an audit file; its egress decisions are not kept on disk", "session", session)
		return nil
	}
	if err := os.MkdirAll(e.auditDir, 0o700); err != nil {
		e.log.Error("cannot create the audit folder; egress decisions are not kept on disk", "dir", e.auditDir, "err", err)
		return nil
	}
	pruneAudit(e.auditDir, time.Now().Add(-AuditRetention))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		e.log.Error("cannot open the audit file; egress decisions are not kept on disk", "path", path, "err", err)
		return nil
	}
	return &auditFile{f: f}
}

func (a *auditFile) write(line []byte) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	buf := make([]byte, 0, len(line)+1)
	buf = append(append(buf, line...), '\n')
	_, _ = a.f.Write(buf) // one write per line: O_APPEND keeps lines whole
}

func (a *auditFile) Close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.f.Close()
}

// pruneAudit removes audit files last written before cutoff.
func pruneAudit(dir string, cutoff time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range entries {
		if !strings.HasSuffix(de.Name(), ".jsonl") || !de.Type().IsRegular() {
			continue
		}
		if info, err := de.Info(); err == nil && info.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(dir, de.Name()))
		}
	}
}
