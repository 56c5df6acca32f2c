// Package auditlog keeps each bottle's egress audit on disk: one file per
// session holding its egress.Records as JSON, one a line, and reads them
// back for bottle-rpc audit.
package auditlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/bottle-dev/bottle/egress"
)

// DefaultDir is where audit files are kept: $BOTTLE_STATE/audit, else
// $XDG_STATE_HOME/bottle/audit, else ~/.local/state/bottle/audit. They
// outlive their bottles; files older than Retention are removed when a
// bottle starts.
func DefaultDir() string {
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

// Retention is how long audit files are kept.
const Retention = 30 * 24 * time.Hour

const suffix = ".jsonl"

// safeSession is what a session id must look like to name a file.
var safeSession = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// Path is the audit file of session in dir, or "" when the session id
// cannot name a file.
func Path(dir, session string) string {
	if !safeSession.MatchString(session) {
		return ""
	}
	return filepath.Join(dir, session+suffix)
}

// File appends a session's audit lines to its file, which only its owner
// may read: the records name every host the agent asked for.
type File struct {
	mu sync.Mutex
	f  *os.File
}

// Open opens the audit file of session in dir for appending, creating the
// folder when needed, and first removes files older than Retention.
func Open(dir, session string) (*File, error) {
	path := Path(dir, session)
	if path == "" {
		return nil, fmt.Errorf("session id %q cannot name an audit file", session)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the audit folder: %w", err)
	}
	prune(dir, time.Now().Add(-Retention))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the audit file: %w", err)
	}
	return &File{f: f}, nil
}

// Write appends one record as a line. A nil *File writes nothing, so that
// a bottle whose audit could not be opened still runs.
func (a *File) Write(rec egress.Record) error {
	if a == nil {
		return nil
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding an audit record: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	buf := make([]byte, 0, len(line)+1)
	buf = append(append(buf, line...), '\n')
	_, err = a.f.Write(buf) // one write a line: O_APPEND keeps lines whole
	return err
}

// Close closes the file; a nil *File is already closed.
func (a *File) Close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.f.Close()
}

// prune removes audit files last written before cutoff.
func prune(dir string, cutoff time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range entries {
		if !strings.HasSuffix(de.Name(), suffix) || !de.Type().IsRegular() {
			continue
		}
		if info, err := de.Info(); err == nil && info.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(dir, de.Name()))
		}
	}
}

// ErrNoAudit means a session has no audit file.
var ErrNoAudit = errors.New("no audit kept")
