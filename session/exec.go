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
// The pump reads the process's output into the exec's scrollback, and
// each watcher subscribed to the exec is sent it from there by a goroutine
// of its own, within a flow-control window of its own: at most the
// registry's window of bytes sent to that watcher and not yet acked. The
// pump holds the process back only while every subscribed watcher's window
// is full, so one watcher that stops acking holds back neither the others
// nor, once another keeps up, the process; with no watcher the process
// never waits. A watcher that falls further behind than the scrollback
// goes on from its oldest byte, flagged Resync. Memory stays bounded: one
// scrollback and one chunk per watcher per exec.
type Exec struct {
	s      *Session
	id     string
	argv   []string
	tty    bool
	proc   backend.Process
	cancel context.CancelFunc // ends the process's context
	window int64
	chunk  int

	credit     chan struct{} // signalled on ack, unsubscribe and kill
	unsubbed   chan struct{} // signalled when a watcher leaves
	inputWake  chan struct{} // signalled on input and end of input
	resizeWake chan struct{} // signalled when a resize was applied
	done       chan struct{} // closed once the process ended and its exit code is known
	resizeMu   sync.Mutex    // serialises Resize calls to the backend

	mu        sync.Mutex
	scroll    *ring  // the latest output; scroll.end counts all of it
	subs      []*sub // watchers sent the output, in subscribe order
	exitSent  bool   // a watcher was sent the exit
	killed    bool
	running   bool
	code      int
	exitErr   error
	exited    bool // the backend reported the process's exit code
	input     []pendingInput
	inputEOF  bool
	resizeSeq uint64 // resizes asked for
	resized   uint64 // the last of them applied (or failed)
}

// sub is one watcher's place in an exec's output.
type sub struct {
	w         Watcher
	pos       int64 // offset of the next byte to send
	replayEnd int64 // bytes before this offset were written before the watcher came
	inflight  int64 // sent and not yet acked
	sent      int64
	acked     int64
	resync    bool // bytes between the last sent and pos were lost
	gone      bool
	wake      chan struct{}
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
		unsubbed:   make(chan struct{}, 1),
		inputWake:  make(chan struct{}, 1),
		resizeWake: make(chan struct{}, 1),
		done:       make(chan struct{}),
		scroll:     newRing(s.r.opts.Scrollback),
		running:    true,
	}
}

// ID is the exec's id, unique in its registry: "SESSION-N".
func (e *Exec) ID() string { return e.id }

// Done is closed once the process ended and its exit code is known; the
// exit reaches each watcher after the output it is sent.
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

// Subscribe sends the exec's output to w from now on: from its first byte
// when called before the exec starts, else from what is written next; with
// replay, first the scrollback (flagged Replay). An exec whose exit a
// watcher was sent has nothing more to say and is not subscribed to. It
// reports whether w was subscribed now; a watcher subscribed already stays
// where it is.
func (e *Exec) Subscribe(w Watcher, replay bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.subOf(w) != nil || (!e.running && e.exitSent) {
		return false
	}
	sb := &sub{w: w, pos: e.scroll.end, wake: make(chan struct{}, 1)}
	if replay {
		sb.pos, sb.replayEnd = e.scroll.start(), e.scroll.end
	}
	e.subs = append(e.subs, sb)
	go e.send(sb)
	return true
}

// Unsubscribe stops sending the output to w; what w was sent and did not
// ack no longer holds the process back.
func (e *Exec) Unsubscribe(w Watcher) {
	e.mu.Lock()
	sb := e.subOf(w)
	if sb != nil {
		e.dropSub(sb)
	}
	e.mu.Unlock()
	if sb != nil {
		signal(sb.wake)
		signal(e.credit)
	}
}

// subOf is w's sub, or nil; e.mu must be held.
func (e *Exec) subOf(w Watcher) *sub {
	for _, sb := range e.subs {
		if sb.w == w {
			return sb
		}
	}
	return nil
}

// dropSub removes sb; e.mu must be held. The scrollback of an exec that
// ended and told a watcher so is not needed any more.
func (e *Exec) dropSub(sb *sub) {
	sb.gone = true
	e.subs = slices.DeleteFunc(e.subs, func(x *sub) bool { return x == sb })
	if !e.running && e.exitSent && len(e.subs) == 0 {
		e.scroll.release()
	}
	signal(e.unsubbed)
}

// waitTold waits until every watcher subscribed was sent the exit (or
// left); the process must have ended.
func (e *Exec) waitTold(ctx context.Context) error {
	for {
		e.mu.Lock()
		n := len(e.subs)
		e.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-e.unsubbed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// pump moves output into the scrollback while some watcher has room in
// its window (or none is subscribed), then records the exit.
func (e *Exec) pump() {
	buf := make([]byte, e.chunk)
	for {
		n := e.waitCredit()
		if n == 0 {
			break
		}
		m, err := e.proc.Read(buf[:min(n, int64(len(buf)))])
		if m > 0 {
			e.mu.Lock()
			e.scroll.write(buf[:m])
			e.wakeSubs()
			e.mu.Unlock()
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
	e.exited = err == nil
	e.code = code
	e.exitErr = err
	e.input = nil
	e.wakeSubs()
	e.mu.Unlock()
	close(e.done)
	e.s.execEnded()
}

// wakeSubs wakes every watcher's sender; e.mu must be held.
func (e *Exec) wakeSubs() {
	for _, sb := range e.subs {
		signal(sb.wake)
	}
}

// waitCredit returns how many bytes the pump may read now, waiting while
// every watcher's window is full; 0 means stop reading (killed or session
// closing).
func (e *Exec) waitCredit() int64 {
	for {
		e.mu.Lock()
		killed := e.killed
		avail := int64(0)
		if len(e.subs) == 0 {
			avail = int64(e.chunk)
		}
		for _, sb := range e.subs {
			// What the watcher has not acked, sent or not, counts.
			unacked := e.scroll.end - (sb.pos - sb.inflight)
			free := e.window - unacked
			if e.scroll.max > 0 {
				// Nor may it drop from the scrollback what the watcher
				// was not sent yet: with a scrollback smaller than the
				// window, one watcher would lose bytes.
				free = min(free, int64(e.scroll.max)-(e.scroll.end-sb.pos))
			}
			avail = max(avail, free)
		}
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

// send delivers the output to one watcher within its window, then the
// exit. After a kill or a close the watcher is still sent what its window
// has room for (the process wrote it), the rest is dropped, as the pump
// stops reading then too, and the exit follows at once.
func (e *Exec) send(sb *sub) {
	buf := make([]byte, e.chunk)
	for {
		e.mu.Lock()
		if sb.gone {
			e.mu.Unlock()
			return
		}
		if start := e.scroll.start(); sb.pos < start {
			sb.pos, sb.resync = start, true
		}
		ended := !e.running
		cut := ended && (e.killed || e.s.life.Err() != nil)
		if sb.pos < e.scroll.end && sb.inflight < e.window {
			n := min(int64(len(buf)), e.window-sb.inflight, e.scroll.end-sb.pos)
			if sb.pos < sb.replayEnd {
				n = min(n, sb.replayEnd-sb.pos) // a chunk is replay or live, not both
			}
			m := e.scroll.readAt(sb.pos, buf[:n])
			flags := OutputFlags{Replay: sb.pos < sb.replayEnd, Resync: sb.resync}
			sb.resync = false
			sb.pos += int64(m)
			sb.inflight += int64(m)
			sb.sent += int64(m)
			e.mu.Unlock()
			// What the pump may read depends on what was sent too (see
			// waitCredit).
			signal(e.credit)
			sb.w.Output(e.id, buf[:m], flags)
			continue
		}
		if ended && (cut || sb.pos >= e.scroll.end) {
			e.exitSent = true
			code, err := e.code, e.exitErr
			e.mu.Unlock()
			sb.w.Exit(e.id, code, err)
			e.mu.Lock()
			e.dropSub(sb)
			e.mu.Unlock()
			return
		}
		e.mu.Unlock()
		<-sb.wake
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

// Ack returns n bytes of w's credit: w has dealt with them. Acks beyond
// what w was sent are ignored, so a confused consumer cannot open its
// window wider than it is; an ack from a watcher not subscribed is
// ignored too.
func (e *Exec) Ack(w Watcher, n int64) {
	if n <= 0 {
		return
	}
	e.mu.Lock()
	sb := e.subOf(w)
	if sb != nil {
		n = min(n, sb.inflight)
		sb.inflight -= n
		sb.acked += n
	}
	e.mu.Unlock()
	if sb != nil {
		signal(sb.wake)
		signal(e.credit)
	}
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
	// A pump that ended because the session's life did knows no exit
	// code: the process may still run in the bottle, and is killed.
	already := e.killed || e.exited
	e.killed = true
	// A sender waiting for an ack would wait for ever: what it was not
	// sent is dropped now, and the exit goes at once (see send).
	e.wakeSubs()
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
	Output  int64 // output bytes the process wrote
	Sent    int64 // output bytes sent to the watcher asked about
	Acked   int64 // output bytes it acked
}

// Snapshot describes the exec, with the flow of its output to w (nil:
// none).
func (e *Exec) Snapshot(w Watcher) ExecSnapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	snap := ExecSnapshot{
		ID:      e.id,
		Argv:    slices.Clone(e.argv),
		Tty:     e.tty,
		Running: e.running,
		Code:    e.code,
		Err:     e.exitErr,
		Output:  e.scroll.end,
	}
	if sb := e.subOf(w); sb != nil {
		snap.Sent, snap.Acked = sb.sent, sb.acked
	}
	return snap
}

// settled reports whether the process ended and no watcher is still
// being sent its output.
func (e *Exec) settled() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.running && len(e.subs) == 0
}

// forget drops the exec's scrollback: its session no longer lists it.
func (e *Exec) forget() {
	e.mu.Lock()
	e.scroll.release()
	e.mu.Unlock()
}

// replayable reports whether attaching replays this exec: it runs, or it
// ended with nobody told.
func (e *Exec) replayable() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.running || !e.exitSent
}
