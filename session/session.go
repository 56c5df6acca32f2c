package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/bottle-dev/bottle/backend"
)

// State is where a session is in its lifecycle:
//
//	starting -> ready -> closing -> closed
//	              closing -> failed (teardown failed; Close retries it)
//
// A start that fails or is cancelled removes the session from the registry
// instead: the backend already removed what it made.
type State string

// States of a session.
const (
	StateStarting State = "starting"
	StateReady    State = "ready"
	StateClosing  State = "closing"
	StateClosed   State = "closed"
	StateFailed   State = "failed"
)

// errClosedWhileStarting is the cause given to a start that Close stopped.
var errClosedWhileStarting = fmt.Errorf("%w: closed while starting", ErrNotReady)

// Session is one bottle and the processes running in it.
type Session struct {
	r  *Registry
	id string
	// life ends when the session starts closing; it cancels a start in
	// progress, credit waits and Wait calls of the execs.
	life       context.Context
	cancelLife context.CancelCauseFunc
	started    chan struct{} // closed when the backend's Start returned

	mu       sync.Mutex
	state    State
	bottle   backend.Bottle
	info     backend.Info
	err      error // why the last teardown failed
	execs    []*Exec
	nextExec int
	closing  *closeOp  // the teardown in progress, if any
	persist  bool      // it outlives the connection that started it
	watchers []Watcher // attached, in attach order
	closedAt time.Time // when it reached closed, for forgetting it

	audit *audit // its egress records on disk

	// policyMu serializes changes of the live egress policy, so that the
	// proxy gets them in the order the lists here changed.
	policyMu sync.Mutex
	allow    []string // the live allowlist; under mu to read, policyMu too to change
	block    []string

	work    work       // where the agent's work comes from and what was fetched; under mu
	fetchMu sync.Mutex // one Fetch at a time
}

// closeOp lets concurrent Close calls wait for the one teardown.
type closeOp struct {
	done chan struct{}
	err  error
}

func newSession(r *Registry, id, agent string, persist bool) *Session {
	life, cancel := context.WithCancelCause(context.Background())
	return &Session{
		r:          r,
		id:         id,
		persist:    persist,
		life:       life,
		cancelLife: cancel,
		started:    make(chan struct{}),
		state:      StateStarting,
		info:       backend.Info{Session: id, Agent: agent},
		audit:      newAudit(id, r.log),
	}
}

// ID is the session's id: 8 hex digits.
func (s *Session) ID() string { return s.id }

// State is the session's current state.
func (s *Session) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Persist reports whether the session outlives the connection that
// started it.
func (s *Session) Persist() bool { return s.persist }

// Attach sends w the session's egress records, questions and state
// changes, and the output of its execs: of each exec still running, and
// each that ended with no watcher told, the scrollback first (flagged
// Replay); of execs started later, all of it. It reports false when w was
// attached already (nothing is replayed again). A closing or closed
// session cannot be attached to (ErrNotReady). ready, when not nil, is
// called with the session's snapshot before any replay is sent, so that
// the caller can answer first.
func (s *Session) Attach(w Watcher, ready func(Snapshot)) (bool, error) {
	s.mu.Lock()
	if s.state == StateClosing || s.state == StateClosed {
		st := s.state
		s.mu.Unlock()
		return false, fmt.Errorf("session %s is %s: %w", s.id, st, ErrNotReady)
	}
	if slices.Contains(s.watchers, w) {
		s.mu.Unlock()
		if ready != nil {
			ready(s.Snapshot(w))
		}
		return false, nil
	}
	s.watchers = append(s.watchers, w)
	s.mu.Unlock()
	if ready != nil {
		ready(s.Snapshot(w))
	}
	for _, e := range s.execList() {
		if e.replayable() {
			e.Subscribe(w, true)
		}
	}
	return true, nil
}

// Detach stops sending w anything of the session, the output of execs it
// started included; the session runs on.
func (s *Session) Detach(w Watcher) {
	s.mu.Lock()
	s.watchers = slices.DeleteFunc(s.watchers, func(x Watcher) bool { return x == w })
	s.mu.Unlock()
	for _, e := range s.execList() {
		e.Unsubscribe(w)
	}
}

// execList returns the session's execs now.
func (s *Session) execList() []*Exec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.execs)
}

// attached returns the watchers attached now.
func (s *Session) attached() []Watcher {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.watchers)
}

// setState moves the session to st and tells the attached watchers.
// s.mu must be held; the watchers are told once it is released, through
// the returned func.
func (s *Session) setState(st State, err error) func() {
	s.state = st
	if st == StateClosed {
		s.closedAt = time.Now()
	}
	ws := slices.Clone(s.watchers)
	return func() {
		for _, w := range ws {
			w.State(s.id, st, err)
		}
	}
}

// Info describes the bottle; only Session and Agent are set before the
// session is ready.
func (s *Session) Info() backend.Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

// start runs the backend's Start under ctx and the session's life, so that
// both the caller and Close can cancel it.
func (s *Session) start(ctx context.Context, spec backend.StartSpec, progress backend.Progress) error {
	defer close(s.started)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(s.life, func() { cancel(context.Cause(s.life)) })
	defer stop()

	b, err := s.r.be.Start(ctx, spec, progress)
	if err == nil {
		s.noteStart(ctx, b, spec)
	}

	tell := func() {}
	defer func() { tell() }()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == StateClosing {
		// Close is waiting for this start to return; it closes b.
		s.bottle = b
		return fmt.Errorf("start session %s: %w", s.id, context.Cause(s.life))
	}
	if err != nil {
		tell = s.setState(StateFailed, err)
		s.err = err
		// A backend reports cancellation as ctx.Err(); keep the cause
		// (shutdown, the client's cancel) so callers can tell them apart.
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w: %w", cause, err)
		}
		return fmt.Errorf("start %s: %w", spec.Agent, err)
	}
	if ctx.Err() != nil {
		// The caller gave up just as the backend finished: nobody will
		// use this bottle, so it goes now rather than at shutdown.
		tell = s.setState(StateFailed, context.Cause(ctx))
		if cerr := b.Close(context.WithoutCancel(ctx)); cerr != nil {
			s.r.log.Error("closing a bottle whose start was cancelled", "session", s.id, "err", cerr)
		}
		return fmt.Errorf("start %s: %w", spec.Agent, context.Cause(ctx))
	}
	s.bottle = b
	s.info = b.Info()
	s.info.Session = s.id
	s.allow = slices.Clone(s.info.Allow)
	s.block = slices.Clone(s.info.Block)
	tell = s.setState(StateReady, nil)
	return nil
}

// ready returns the bottle, or an error wrapping ErrNotReady when the
// session is not ready.
func (s *Session) ready() (backend.Bottle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == StateFailed && s.err != nil {
		return nil, fmt.Errorf("session %s failed (%v); close it and start a new one: %w", s.id, s.err, ErrFailed)
	}
	if s.state != StateReady {
		return nil, fmt.Errorf("session %s is %s: %w", s.id, s.state, ErrNotReady)
	}
	return s.bottle, nil
}

// checkGone marks a ready session failed when err says its bottle is gone
// or the engine went away, so that later requests say so at once; close
// still removes whatever is left.
func (s *Session) checkGone(err error) {
	if !errors.Is(err, backend.ErrBottleGone) && !errors.Is(err, backend.ErrEngineUnavailable) {
		return
	}
	s.mu.Lock()
	if s.state != StateReady {
		s.mu.Unlock()
		return
	}
	tell := s.setState(StateFailed, err)
	s.err = err
	s.mu.Unlock()
	s.r.log.Warn("session failed", "session", s.id, "err", err)
	tell()
}

// Exec starts a process in the bottle. ready is called with the new exec
// before any of its output is delivered, so the caller can hand out its id
// first; the output pump starts when ready returns.
func (s *Session) Exec(ctx context.Context, spec backend.ExecSpec, ready func(*Exec)) (*Exec, error) {
	b, err := s.ready()
	if err != nil {
		return nil, err
	}
	// The process lives as long as the session, not as long as the
	// request that made it: ctx only cancels the making.
	pctx, cancel := context.WithCancel(s.life)
	stop := context.AfterFunc(ctx, cancel)
	p, err := b.Exec(pctx, spec)
	if !stop() {
		err = errors.Join(err, context.Cause(ctx))
	}
	if err != nil {
		if p != nil {
			p.Close()
		}
		cancel()
		s.checkGone(err)
		return nil, fmt.Errorf("exec in session %s: %w", s.id, err)
	}

	s.mu.Lock()
	if s.state != StateReady {
		state := s.state
		s.mu.Unlock()
		p.Close()
		cancel()
		return nil, fmt.Errorf("session %s is %s: %w", s.id, state, ErrNotReady)
	}
	s.nextExec++
	e := newExec(s, fmt.Sprintf("%s-%d", s.id, s.nextExec), spec, p, cancel)
	s.execs = append(s.execs, e)
	// Under s.mu, so that a watcher detaching now is either subscribed
	// here and unsubscribed by Detach, or not subscribed at all.
	for _, w := range s.watchers {
		e.Subscribe(w, false)
	}
	s.mu.Unlock()
	s.r.addExec(e)
	s.execEnded()
	ready(e)
	e.start()
	return e, nil
}

// CopyIn copies a host file or folder into the bottle; closing the session
// cancels it.
func (s *Session) CopyIn(ctx context.Context, hostPath, containerPath string) (int64, error) {
	b, err := s.ready()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(s.life, func() { cancel(context.Cause(s.life)) })
	defer stop()
	n, err := b.CopyIn(ctx, hostPath, containerPath)
	if err != nil {
		s.checkGone(err)
		return n, fmt.Errorf("copy %s into session %s: %w", hostPath, s.id, err)
	}
	return n, nil
}

// Close ends every exec and removes the bottle, after counting the work
// its repository has that no Fetch brought home (see Unfetched). It
// cancels a start in progress and waits for it. Closing a closed session
// does nothing; closing a failed one retries the teardown. Concurrent
// calls wait for the same teardown.
func (s *Session) Close(ctx context.Context) error {
	s.noteUnfetched(ctx)
	return s.close(ctx, errClosedWhileStarting)
}

// close is Close with the cause a start in progress is cancelled with.
func (s *Session) close(ctx context.Context, cause error) error {
	s.mu.Lock()
	if s.state == StateClosed {
		s.mu.Unlock()
		return nil
	}
	if op := s.closing; op != nil {
		s.mu.Unlock()
		select {
		case <-op.done:
			return op.err
		case <-ctx.Done():
			return fmt.Errorf("close session %s: %w", s.id, context.Cause(ctx))
		}
	}
	op := &closeOp{done: make(chan struct{})}
	s.closing = op
	tell := s.setState(StateClosing, nil)
	s.mu.Unlock()
	tell()

	s.cancelLife(cause)
	op.err = s.teardown(ctx)

	s.mu.Lock()
	s.closing = nil
	s.err = op.err
	if op.err != nil {
		tell = s.setState(StateFailed, op.err)
	} else {
		tell = s.setState(StateClosed, nil)
		s.watchers = nil
	}
	s.mu.Unlock()
	tell()
	if op.err == nil {
		s.audit.close()
		// Nothing of a closed session is replayed: its execs' output
		// still being sent is cut (see Exec.send).
		for _, e := range s.execList() {
			e.forget()
		}
		s.r.prune()
	}
	close(op.done)
	return op.err
}

// teardown waits for a start in progress, kills every exec and waits for
// the kill and for its exit to be delivered, then closes the bottle: a
// kill still running in a bottle being removed would fail.
func (s *Session) teardown(ctx context.Context) error {
	select {
	case <-s.started:
	case <-ctx.Done():
		return fmt.Errorf("close session %s: waiting for its start to stop: %w", s.id, context.Cause(ctx))
	}
	s.mu.Lock()
	execs := s.execs
	b := s.bottle
	s.mu.Unlock()

	kills := make([]<-chan struct{}, len(execs))
	for i, e := range execs {
		kills[i] = e.kill()
	}
	for i, e := range execs {
		for _, c := range []<-chan struct{}{kills[i], e.done} {
			select {
			case <-c:
			case <-ctx.Done():
				return fmt.Errorf("close session %s: waiting for exec %s to end: %w", s.id, e.id, context.Cause(ctx))
			}
		}
		if err := e.waitTold(ctx); err != nil {
			return fmt.Errorf("close session %s: telling the exit of exec %s: %w", s.id, e.id, err)
		}
	}
	if b == nil {
		return nil
	}
	if err := b.Close(ctx); err != nil {
		return fmt.Errorf("close session %s: %w", s.id, err)
	}
	return nil
}

// maxEndedExecs bounds the ended execs a session keeps, for bottle/list
// and for replay to the next watcher: the oldest go first.
const maxEndedExecs = 16

// execEnded forgets the oldest ended execs beyond maxEndedExecs that no
// watcher is still being sent, so that a session that runs many short
// commands for hours does not grow with them.
func (s *Session) execEnded() {
	s.mu.Lock()
	var ended, drop []*Exec
	for _, e := range s.execs {
		if e.settled() {
			ended = append(ended, e)
		}
	}
	for _, e := range ended {
		if len(ended)-len(drop) <= maxEndedExecs {
			break
		}
		drop = append(drop, e)
	}
	s.execs = slices.DeleteFunc(s.execs, func(e *Exec) bool { return slices.Contains(drop, e) })
	s.mu.Unlock()
	for _, e := range drop {
		e.forget()
	}
	s.r.forgetExecs(drop)
}

// Snapshot describes a session at one moment.
type Snapshot struct {
	ID    string
	State State
	// Persist: it outlives the connection that started it.
	Persist bool
	// Attached is how many watchers are attached.
	Attached int
	Info     backend.Info
	// Allow is the live egress allowlist; nil when the bottle's proxy
	// cannot be changed or the session is not ready yet.
	Allow []string
	// Err is why the last teardown failed, in state failed.
	Err   error
	Execs []ExecSnapshot
}

// Snapshot describes the session and its execs, with the flow of their
// output to w (nil: none).
func (s *Session) Snapshot(w Watcher) Snapshot {
	s.mu.Lock()
	snap := Snapshot{ID: s.id, State: s.state, Persist: s.persist, Attached: len(s.watchers), Info: s.info, Err: s.err}
	if s.bottle != nil && s.info.LivePolicy {
		snap.Allow = slices.Clone(s.allow)
	}
	execs := s.execs
	s.mu.Unlock()
	for _, e := range execs {
		snap.Execs = append(snap.Execs, e.Snapshot(w))
	}
	return snap
}
