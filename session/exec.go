package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/bottle-dev/bottle/backend"
)

// KillGrace is how long an exec's exit code is waited for after Kill: a
// backend may only be able to detach from a process, not end it.
const KillGrace = 2 * time.Second

// killTimeout bounds a backend's kill of one exec.
const killTimeout = 10 * time.Second

// resizeTimeout bounds how long input typed after a resize can be held
// by an engine that does not apply it.
const resizeTimeout = 5 * time.Second

// ErrKilled is the exit error of an exec ended by Kill whose exit code did
// not come within KillGrace.
var ErrKilled = errors.New("killed")

// Exec is one process running in a session, with its output pump.
//
// The pump reads the process's output only while the exec has credit:
// at most the registry's window of bytes may be sent and not yet acked.
// A consumer that stops acking therefore stalls this exec alone, and the
// memory held for it stays bounded by the window.
type Exec struct {
	s      *Session
	id     string
	argv   []string
	tty    bool
	proc   backend.Process
	cancel context.CancelFunc // ends the process's context
	window int64
	chunk  int

	credit     chan struct{} // signalled on ack and kill
	inputWake  chan struct{} // signalled on input and end of input
	resizeWake chan struct{} // signalled when a resize was applied
	done       chan struct{} // closed after Exit was delivered
	resizeMu   sync.Mutex    // serialises Resize calls to the backend

	mu        sync.Mutex
	sent      int64 // output bytes handed to Events.Output
	acked     int64 // never more than sent
	killed    bool
	running   bool
	code      int
	exitErr   error
	input     []pendingInput
	inputEOF  bool
	resizeSeq uint64 // resizes asked for
	resized   uint64 // the last of them applied (or failed)
}

// pendingInput is input not yet written, with the resizes asked for
// before it: a process must see the size the user had when typing it, as
// with a local terminal (a full-screen program redraws for the new size,
// and `stty size` right after a resize prints that size).
type pendingInput struct {
	data  []byte
	after uint64
}

func newExec(s *Session, id string, spec backend.ExecSpec, p backend.Process, cancel context.CancelFunc) *Exec {
	return &Exec{
		s:          s,
		id:         id,
		argv:       slices.Clone(p.Argv()),
		tty:        spec.Tty,
		proc:       p,
		cancel:     cancel,
		window:     int64(s.r.opts.Window),
		chunk:      s.r.opts.Chunk,
		credit:     make(chan struct{}, 1),
		inputWake:  make(chan struct{}, 1),
		resizeWake: make(chan struct{}, 1),
		done:       make(chan struct{}),
		running:    true,
	}
}

// ID is the exec's id, unique in its registry: "SESSION-N".
func (e *Exec) ID() string { return e.id }

// Done is closed once the exec's exit has been delivered.
func (e *Exec) Done() <-chan struct{} { return e.done }

func (e *Exec) start() {
	go e.pump()
	go e.writeInput()
}

// signal wakes whoever waits on c without blocking: c has room for one
// wake-up, and one pending wake-up is as good as many.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// pump moves output to Events.Output within the window, then delivers the
// exit. Exit always follows the last Output, since both come from here.
func (e *Exec) pump() {
	defer close(e.done)
	buf := make([]byte, e.chunk)
	for {
		n := e.waitCredit()
		if n == 0 {
			break
		}
		m, err := e.proc.Read(buf[:min(n, int64(len(buf)))])
		if m > 0 {
			e.mu.Lock()
			e.sent += int64(m)
			e.mu.Unlock()
			e.s.r.opts.Events.Output(e.id, buf[:m])
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				e.s.r.log.Debug("exec output ended", "exec", e.id, "err", err)
			}
			break
		}
	}
	code, err := e.wait()
	e.proc.Close()
	e.cancel()

	e.mu.Lock()
	e.running = false
	e.code = code
	e.exitErr = err
	e.input = nil
	e.mu.Unlock()
	e.s.r.opts.Events.Exit(e.id, code, err)
}

// waitCredit returns how many bytes the pump may read now, waiting while
// the window is full; 0 means stop reading (killed or session closing).
func (e *Exec) waitCredit() int64 {
	for {
		e.mu.Lock()
		killed := e.killed
		avail := e.window - (e.sent - e.acked)
		e.mu.Unlock()
		if killed {
			return 0
		}
		if avail > 0 {
			return avail
		}
		select {
		case <-e.credit:
		case <-e.s.life.Done():
			return 0
		}
	}
}

// wait gets the exit code; after Kill it waits at most KillGrace.
func (e *Exec) wait() (int, error) {
	ctx := e.s.life
	e.mu.Lock()
	killed := e.killed
	e.mu.Unlock()
	if killed {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, KillGrace)
		defer cancel()
	}
	code, err := e.proc.Wait(ctx)
	if err != nil {
		e.s.checkGone(err)
	}
	switch {
	case err == nil:
		return code, nil
	case e.s.life.Err() != nil:
		return -1, fmt.Errorf("session closed: %w", context.Cause(e.s.life))
	case killed:
		return -1, fmt.Errorf("%w: %w", ErrKilled, err)
	default:
		return -1, fmt.Errorf("exit code of exec %s: %w", e.id, err)
	}
}

// Ack returns n bytes of credit: the consumer has dealt with them. Acks
// beyond what was sent are ignored, so a confused consumer cannot open
// the window wider than it is.
func (e *Exec) Ack(n int64) {
	if n <= 0 {
		return
	}
	e.mu.Lock()
	e.acked = min(e.acked+n, e.sent)
	e.mu.Unlock()
	signal(e.credit)
}

// Input queues data for the process's input. It never blocks: the queue is
// written in order by the exec's own goroutine, so a process that does not
// read its input holds up nothing else. Input after the exit or after
// CloseInput is dropped.
func (e *Exec) Input(data []byte) {
	e.mu.Lock()
	if !e.running || e.inputEOF {
		e.mu.Unlock()
		return
	}
	e.input = append(e.input, pendingInput{data: data, after: e.resizeSeq})
	e.mu.Unlock()
	signal(e.inputWake)
}

// CloseInput ends the process's input once the queued input is written.
func (e *Exec) CloseInput() {
	e.mu.Lock()
	e.inputEOF = true
	e.mu.Unlock()
	signal(e.inputWake)
}

func (e *Exec) writeInput() {
	for {
		select {
		case <-e.inputWake:
		case <-e.done:
			return
		}
		e.mu.Lock()
		batch, eof := e.input, e.inputEOF
		e.input = nil
		e.mu.Unlock()
		for _, in := range batch {
			if !e.waitResized(in.after) {
				return
			}
			if _, err := e.proc.Write(in.data); err != nil {
				e.s.r.log.Debug("exec input dropped", "exec", e.id, "bytes", len(in.data), "err", err)
			}
		}
		if eof {
			if err := e.proc.CloseInput(); err != nil {
				e.s.r.log.Debug("closing exec input", "exec", e.id, "err", err)
			}
			return
		}
	}
}

// waitResized waits until the resize numbered seq, or a later one, was
// applied. It reports false when the exec ended first.
func (e *Exec) waitResized(seq uint64) bool {
	for {
		e.mu.Lock()
		done := e.resized >= seq
		e.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-e.resizeWake:
		case <-e.done:
			return false
		}
	}
}

// Resize sets the terminal size. It never blocks; when sizes come faster
// than the backend applies them, the ones overtaken are skipped. Input
// that comes after it is held until it was applied.
func (e *Exec) Resize(cols, rows uint) {
	e.mu.Lock()
	if !e.running {
		e.mu.Unlock()
		return
	}
	e.resizeSeq++
	seq := e.resizeSeq
	e.mu.Unlock()
	go func() {
		e.resizeMu.Lock()
		defer e.resizeMu.Unlock()
		e.mu.Lock()
		stale := seq != e.resizeSeq || !e.running
		e.mu.Unlock()
		if stale {
			return
		}
		ctx, cancel := context.WithTimeout(e.s.life, resizeTimeout)
		defer cancel()
		if err := e.proc.Resize(ctx, cols, rows); err != nil {
			e.s.r.log.Debug("exec resize", "exec", e.id, "err", err)
		}
		e.mu.Lock()
		e.resized = max(e.resized, seq)
		e.mu.Unlock()
		signal(e.resizeWake)
	}()
}

// Kill ends the exec: the backend kills the process, the connection is
// closed, and the exit is delivered as soon as the backend reports it (or
// KillGrace passes). It is idempotent and does not block.
func (e *Exec) Kill() { e.kill() }

// kill is Kill that returns a channel closed once the backend's kill
// returned, so that teardown removes the bottle only after it.
func (e *Exec) kill() <-chan struct{} {
	done := make(chan struct{})
	e.mu.Lock()
	already := e.killed || !e.running
	e.killed = true
	e.mu.Unlock()
	if already {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		// The session's life is over by the time teardown kills, and a
		// kill must still reach the bottle: it gets a context of its own.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(e.s.life), killTimeout)
		defer cancel()
		if err := e.proc.Kill(ctx); err != nil {
			e.s.r.log.Warn("killing exec", "exec", e.id, "err", err)
		}
		if err := e.proc.Close(); err != nil {
			e.s.r.log.Debug("closing exec", "exec", e.id, "err", err)
		}
	}()
	signal(e.credit)
	return done
}

// ExecSnapshot describes an exec at one moment.
type ExecSnapshot struct {
	ID      string
	Argv    []string // empty: the agent's command
	Tty     bool
	Running bool
	Code    int   // valid when !Running
	Err     error // why Code is unknown (-1)
	Sent    int64 // output bytes sent
	Acked   int64 // output bytes acked
}

// Snapshot describes the exec.
func (e *Exec) Snapshot() ExecSnapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	return ExecSnapshot{
		ID:      e.id,
		Argv:    slices.Clone(e.argv),
		Tty:     e.tty,
		Running: e.running,
		Code:    e.code,
		Err:     e.exitErr,
		Sent:    e.sent,
		Acked:   e.acked,
	}
}
