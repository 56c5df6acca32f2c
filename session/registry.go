// Package session keeps the live bottles of one server: each session's
// lifecycle state, its backend.Bottle, its execs and their output pumps
// with flow-control credits, and the teardown of everything on close,
// shutdown or disconnect.
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
)

// Errors the registry wraps so that callers can tell the kinds apart.
var (
	ErrNotFound     = errors.New("session not found")
	ErrExecNotFound = errors.New("exec not found")
	ErrNotReady     = errors.New("session not ready")
	ErrShuttingDown = errors.New("shutting down")
	// ErrFailed is what requests on a failed session get. The cause is in
	// its message only: it was true when the session failed (the engine
	// was down, say) and may no longer be.
	ErrFailed = fmt.Errorf("%w: failed", ErrNotReady)
)

// Defaults for Options.
const (
	DefaultWindow     = 256 << 10
	DefaultChunk      = 16 << 10
	DefaultScrollback = 1 << 20
)

// How long and how many closed sessions are kept for bottle/list before
// they are forgotten.
const (
	keepClosedFor = 10 * time.Minute
	maxClosed     = 32
)

// Options tune a Registry.
type Options struct {
	// Window is the most output bytes per exec sent but not yet acked;
	// DefaultWindow when zero.
	Window int
	// Chunk is the largest Output call; DefaultChunk when zero.
	Chunk int
	// Scrollback is how many output bytes of each exec are kept for
	// replay; DefaultScrollback when zero.
	Scrollback int
	// Logger gets diagnostics; slog.Default() when nil.
	Logger *slog.Logger
	// AuditDir is where each session's egress records are kept, one file
	// per session (see auditlog); empty keeps none.
	AuditDir string
}

// Registry is the set of sessions of one server. It is safe for concurrent
// use.
type Registry struct {
	be   backend.Backend
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	sessions map[string]*Session
	execs    map[string]*Exec
	order    []string // session ids in start order, for List
	closed   bool     // CloseAll was called: no new sessions
}

// NewRegistry returns an empty registry that starts bottles on be.
func NewRegistry(be backend.Backend, opts Options) *Registry {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Chunk <= 0 {
		opts.Chunk = DefaultChunk
	}
	if opts.Scrollback <= 0 {
		opts.Scrollback = DefaultScrollback
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Registry{
		be:       be,
		opts:     opts,
		log:      log,
		sessions: map[string]*Session{},
		execs:    map[string]*Exec{},
	}
}

// Window is the flow-control window per exec, in bytes.
func (r *Registry) Window() int { return r.opts.Window }

// Chunk is the largest output chunk, in bytes.
func (r *Registry) Chunk() int { return r.opts.Chunk }

// Scrollback is how many output bytes of each exec are kept for replay.
func (r *Registry) Scrollback() int { return r.opts.Scrollback }

// StartOptions say who starts a session.
type StartOptions struct {
	// Watcher is attached from the start; nil: none.
	Watcher Watcher
	// Persist marks the session as one that outlives its starter (see
	// Session.Persist); the registry itself closes sessions only in
	// CloseAll.
	Persist bool
}

// Start registers a new session in state starting and starts its bottle.
// spec.Session and spec.OnEgress are set here. A start that fails or is
// cancelled leaves nothing behind: the backend removes what it made and the
// session is dropped from the registry, unless Close was called on it while
// it started, in which case it stays as closed.
func (r *Registry) Start(ctx context.Context, spec backend.StartSpec, progress backend.Progress, opts StartOptions) (*Session, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w", spec.Agent, ErrShuttingDown)
	}
	id := r.newSessionID()
	s := newSession(r, id, spec.Agent, opts.Persist)
	if opts.Watcher != nil {
		s.watchers = []Watcher{opts.Watcher}
	}
	r.sessions[id] = s
	r.order = append(r.order, id)
	r.mu.Unlock()

	spec.Session = id
	spec.Answers = true
	s.audit.open(r.opts.AuditDir)
	spec.OnEgress = func(rec egress.Record) {
		// The registry names the session, whatever the proxy's stream said.
		rec.Session = id
		s.audit.write(rec)
		for _, w := range s.attached() {
			w.Egress(rec)
		}
		if rec.Event == egress.EventAsk {
			go s.ask(rec)
		}
	}
	if err := s.start(ctx, spec, progress); err != nil {
		s.audit.close()
		// A session Close was called on stays, as closed, so that closing
		// it again is not an error.
		if st := s.State(); st != StateClosing && st != StateClosed {
			r.forget(s)
		}
		return nil, err
	}
	return s, nil
}

// newSessionID returns 8 random hex digits not used by this registry.
// r.mu must be held.
func (r *Registry) newSessionID() string {
	for {
		var b [4]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		id := hex.EncodeToString(b[:])
		if _, taken := r.sessions[id]; !taken {
			return id
		}
	}
}

func (r *Registry) forget(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sessions, s.id)
	r.order = slices.DeleteFunc(r.order, func(id string) bool { return id == s.id })
}

func (r *Registry) addExec(e *Exec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.execs[e.id] = e
}

func (r *Registry) forgetExecs(es []*Exec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range es {
		delete(r.execs, e.id)
	}
}

// prune forgets the sessions closed more than keepClosedFor ago, and the
// oldest closed ones beyond maxClosed, with their execs: a server that
// runs for days keeps a bounded history.
func (r *Registry) prune() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var closed []*Session
	for _, id := range r.order {
		s := r.sessions[id]
		s.mu.Lock()
		if s.state == StateClosed {
			closed = append(closed, s)
		}
		s.mu.Unlock()
	}
	now := time.Now()
	for i, s := range closed {
		s.mu.Lock()
		old := now.Sub(s.closedAt) > keepClosedFor || len(closed)-i > maxClosed
		execs := s.execs
		s.mu.Unlock()
		if !old {
			continue
		}
		delete(r.sessions, s.id)
		r.order = slices.DeleteFunc(r.order, func(id string) bool { return id == s.id })
		for _, e := range execs {
			delete(r.execs, e.id)
			e.forget()
		}
	}
}

// Get returns a session by id; it wraps ErrNotFound.
func (r *Registry) Get(id string) (*Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sessions[id]
	if !ok {
		return nil, fmt.Errorf("session %q: %w", id, ErrNotFound)
	}
	return s, nil
}

// Exec returns an exec of any session by id; it wraps ErrExecNotFound.
func (r *Registry) Exec(id string) (*Exec, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.execs[id]
	if !ok {
		return nil, fmt.Errorf("exec %q: %w", id, ErrExecNotFound)
	}
	return e, nil
}

// List describes every session in start order, closed ones not yet
// forgotten included, with the flow of their output to w (nil: none).
func (r *Registry) List(w Watcher) []Snapshot {
	r.prune()
	r.mu.Lock()
	ss := make([]*Session, 0, len(r.order))
	for _, id := range r.order {
		ss = append(ss, r.sessions[id])
	}
	r.mu.Unlock()
	out := make([]Snapshot, len(ss))
	for i, s := range ss {
		out[i] = s.Snapshot(w)
	}
	return out
}

// Close closes one session by id; see Session.Close.
func (r *Registry) Close(ctx context.Context, id string) error {
	s, err := r.Get(id)
	if err != nil {
		return err
	}
	return s.Close(ctx)
}

// CloseAll refuses new sessions from now on and closes every session
// concurrently, cancelling the ones still starting. It returns once all are
// torn down (or ctx ends), with their errors joined. It may be called more
// than once.
func (r *Registry) CloseAll(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	ss := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		ss = append(ss, s)
	}
	r.mu.Unlock()

	errs := make([]error, len(ss))
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Go(func() { errs[i] = s.close(ctx, ErrShuttingDown) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
