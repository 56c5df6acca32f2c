package session_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/internal/testwait"
	"github.com/bottle-dev/bottle/session"
)

// recordLen is the length of one record of a counted stream: nine digits
// and a newline, so that a byte lost or repeated anywhere shifts every
// record after it.
const recordLen = 10

// stream returns the bytes [from, to) of the counted stream: record k is
// k in nine digits, then a newline.
func stream(from, to int64) []byte {
	var b []byte
	for k := from / recordLen; k*recordLen < to; k++ {
		b = fmt.Appendf(b, "%09d\n", k)
	}
	lo := from - from/recordLen*recordLen
	return b[lo : lo+to-from]
}

// countBackend is fakeBackend whose bottles run counted processes.
type countBackend struct {
	*fakeBackend
	mu    sync.Mutex
	procs []*counted
}

func (b *countBackend) Start(ctx context.Context, spec backend.StartSpec, progress backend.Progress) (backend.Bottle, error) {
	bt, err := b.fakeBackend.Start(ctx, spec, progress)
	if err != nil {
		return nil, err
	}
	return &countBottle{fakeBottle: bt.(*fakeBottle), be: b}, nil
}

func (b *countBackend) proc(i int) *counted {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.procs[i]
}

type countBottle struct {
	*fakeBottle
	be *countBackend
}

// Exec runs "count N [pause P]": a process that writes the counted stream,
// N bytes then end of output (N < 0: endless), stopping after P bytes
// until its gate is closed; it records its input.
func (bt *countBottle) Exec(_ context.Context, spec backend.ExecSpec) (backend.Process, error) {
	p := &counted{n: -1, pauseAt: -1, gate: make(chan struct{}), closed: make(chan struct{}), eof: make(chan struct{})}
	if len(spec.Argv) >= 2 {
		p.n, _ = strconv.ParseInt(spec.Argv[1], 10, 64)
	}
	if len(spec.Argv) >= 4 {
		p.pauseAt, _ = strconv.ParseInt(spec.Argv[3], 10, 64)
	}
	bt.be.mu.Lock()
	bt.be.procs = append(bt.be.procs, p)
	bt.be.mu.Unlock()
	return p, nil
}

// counted writes the counted stream; see countBottle.Exec.
type counted struct {
	n, pauseAt int64
	gate       chan struct{}
	closed     chan struct{}
	closeOnce  sync.Once
	eof        chan struct{} // closed when the last byte was read
	off        atomic.Int64  // bytes read so far

	mu    sync.Mutex
	input []byte
}

func (p *counted) Read(b []byte) (int, error) {
	off := p.off.Load()
	if off == p.pauseAt {
		select {
		case <-p.gate:
		case <-p.closed:
			return 0, io.ErrClosedPipe
		}
	}
	select {
	case <-p.closed:
		return 0, io.ErrClosedPipe
	default:
	}
	end := off + int64(len(b))
	if p.pauseAt > off {
		end = min(end, p.pauseAt)
	}
	if p.n >= 0 {
		end = min(end, p.n)
	}
	if end == off {
		close(p.eof)
		return 0, io.EOF
	}
	n := copy(b, stream(off, end))
	p.off.Store(end)
	return n, nil
}

// release lets a paused process go on.
func (p *counted) release() { close(p.gate) }

func (p *counted) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.input = append(p.input, b...)
	return len(b), nil
}

func (p *counted) CloseInput() error                        { return nil }
func (p *counted) Resize(context.Context, uint, uint) error { return nil }
func (p *counted) Argv() []string                           { return []string{"count"} }
func (p *counted) Kill(context.Context) error               { return p.Close() }
func (p *counted) Close() error                             { p.closeOnce.Do(func() { close(p.closed) }); return nil }
func (p *counted) Wait(ctx context.Context) (int, error) {
	select {
	case <-p.eof:
		return 0, nil
	case <-p.closed:
		return 130, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// chunk is one Output call a watcher got.
type chunk struct {
	exec  string
	data  []byte
	flags session.OutputFlags
}

// watcher records what a registry sends it. With autoAck it acks each
// chunk as it gets it; canAsk and answer say how it answers questions.
type watcher struct {
	name    string
	r       *session.Registry
	autoAck atomic.Bool
	canAsk  bool
	answer  string

	mu     sync.Mutex
	chunks []chunk
	exits  map[string][]int
	states []string
	egress []string
	asked  int
}

func newWatcher(name string, r *session.Registry, autoAck bool) *watcher {
	w := &watcher{name: name, r: r, exits: map[string][]int{}}
	w.autoAck.Store(autoAck)
	return w
}

func (w *watcher) String() string { return w.name }

func (w *watcher) Output(exec string, data []byte, f session.OutputFlags) {
	w.mu.Lock()
	w.chunks = append(w.chunks, chunk{exec, bytes.Clone(data), f})
	w.mu.Unlock()
	if w.autoAck.Load() {
		if e, err := w.r.Exec(exec); err == nil {
			e.Ack(w, int64(len(data)))
		}
	}
}

func (w *watcher) Exit(exec string, code int, _ error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.exits[exec] = append(w.exits[exec], code)
}

func (w *watcher) Egress(rec egress.Record) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.egress = append(w.egress, rec.Host)
}

func (w *watcher) State(id string, st session.State, _ error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.states = append(w.states, string(st))
}

func (w *watcher) Ask(context.Context, egress.Record) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.canAsk {
		return session.Deny, false
	}
	w.asked++
	return w.answer, true
}

// output is the bytes of exec's output w got, and how many of them came
// flagged Replay.
func (w *watcher) output(exec string) (data []byte, replayed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.chunks {
		if c.exec == exec {
			data = append(data, c.data...)
			if c.flags.Replay {
				replayed += len(c.data)
			}
		}
	}
	return data, replayed
}

func (w *watcher) chunksOf(exec string) []chunk {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(w.chunks), func(c chunk) bool { return c.exec != exec })
}

func (w *watcher) exitsOf(exec string) []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.exits[exec])
}

func (w *watcher) statesSeen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.states)
}

func (w *watcher) egressSeen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.egress)
}

func (w *watcher) waitOutput(t *testing.T, exec string, n int) {
	t.Helper()
	testwait.Until(t, fmt.Sprintf("%s to get %d bytes of %s", w, n, exec), waitTimeout, func() bool {
		got, _ := w.output(exec)
		return len(got) >= n
	})
}

func (w *watcher) waitExit(t *testing.T, exec string) {
	t.Helper()
	testwait.Until(t, fmt.Sprintf("%s to get the exit of %s", w, exec), waitTimeout, func() bool { return len(w.exitsOf(exec)) > 0 })
}

// checkFlags fails unless exec's chunks to w are the Replay-flagged ones
// first, then the live ones, and none is flagged Resync.
func checkFlags(t *testing.T, w *watcher, exec string) {
	t.Helper()
	live := false
	for i, c := range w.chunksOf(exec) {
		if c.flags.Resync {
			t.Errorf("%s: chunk %d of %s flagged Resync", w, i, exec)
		}
		if !c.flags.Replay {
			live = true
		} else if live {
			t.Errorf("%s: chunk %d of %s flagged Replay after a live chunk", w, i, exec)
		}
	}
}

// newCountRegistry returns a registry on a countBackend.
func newCountRegistry(t *testing.T, opts session.Options) (*session.Registry, *countBackend) {
	t.Helper()
	be := &countBackend{fakeBackend: &fakeBackend{}}
	r := session.NewRegistry(be, opts)
	t.Cleanup(func() {
		if err := r.CloseAll(context.Background()); err != nil {
			t.Errorf("CloseAll: %v", err)
		}
	})
	return r, be
}

func startWith(t *testing.T, r *session.Registry, w session.Watcher) *session.Session {
	t.Helper()
	s, err := r.Start(context.Background(), backend.StartSpec{Agent: "claude"}, nil, session.StartOptions{Watcher: w})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s
}

func execArgv(t *testing.T, s *session.Session, argv ...string) *session.Exec {
	t.Helper()
	e, err := s.Exec(context.Background(), backend.ExecSpec{Argv: argv}, func(*session.Exec) {})
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	return e
}

func attach(t *testing.T, s *session.Session, w session.Watcher) {
	t.Helper()
	if ok, err := s.Attach(w, nil); err != nil || !ok {
		t.Fatalf("Attach = %v, %v; want true, nil", ok, err)
	}
}

// A watcher that attaches while the process writes gets the scrollback
// flagged Replay, then the live output, and the two join without a byte
// lost or repeated; replay and live output never share a chunk.
func TestReplayThenLiveIsByteExact(t *testing.T) {
	const (
		total     = 200_000
		pauseAt   = 50_000
		chunkSize = 1000
	)
	tests := []struct {
		name       string
		scrollback int
		first      bool // an acking watcher is attached from the start
	}{
		{"alone, the scrollback wrapped", 3000, false},
		{"beside an acking watcher, the scrollback holds it all", total, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, be := newCountRegistry(t, session.Options{Window: 2048, Chunk: chunkSize, Scrollback: tt.scrollback})
			var first *watcher
			var s *session.Session
			if tt.first {
				first = newWatcher("first", r, true)
				s = startWith(t, r, first)
			} else {
				s = startWith(t, r, nil)
			}
			e := execArgv(t, s, "count", strconv.Itoa(total), "pause", strconv.Itoa(pauseAt))
			p := be.proc(0)
			testwait.Until(t, "the process to pause", waitTimeout, func() bool { return e.Snapshot(nil).Output == pauseAt })

			second := newWatcher("second", r, true)
			attached := make(chan struct{})
			go func() {
				defer close(attached)
				attach(t, s, second)
			}()
			p.release() // the process goes on while the watcher attaches
			<-attached
			second.waitExit(t, e.ID())

			got, replayed := second.output(e.ID())
			from := int64(total - len(got))
			if !bytes.Equal(got, stream(from, total)) {
				t.Fatalf("the second watcher got %d bytes that are not the stream's last ones", len(got))
			}
			// A read the process was given room for before the watcher
			// came may still overwrite the scrollback's oldest chunk: the
			// replay then starts one chunk later, its first chunk flagged
			// Resync (the client resets a terminal it has not written to).
			chunks := second.chunksOf(e.ID())
			if tt.scrollback < pauseAt {
				if replayed > tt.scrollback || replayed < tt.scrollback-chunkSize {
					t.Errorf("replayed %d bytes, want the scrollback's %d, less at most one chunk", replayed, tt.scrollback)
				}
				if len(chunks) > 0 && chunks[0].flags.Resync && replayed == tt.scrollback {
					t.Errorf("a full replay's first chunk is flagged Resync")
				}
				if len(chunks) > 0 {
					chunks[0].flags.Resync = false
				}
			} else if from != 0 || replayed < pauseAt {
				t.Errorf("replayed %d bytes from byte %d, want all the output so far (at least %d) from byte 0", replayed, from, pauseAt)
			}
			live := false
			for i, c := range chunks {
				if c.flags.Resync {
					t.Errorf("chunk %d flagged Resync", i)
				}
				if !c.flags.Replay {
					live = true
				} else if live {
					t.Errorf("chunk %d flagged Replay after a live chunk", i)
				}
			}
			if exits := second.exitsOf(e.ID()); !slices.Equal(exits, []int{0}) {
				t.Errorf("exits = %v, want [0]", exits)
			}
			if first != nil {
				first.waitExit(t, e.ID())
				if got, replayed := first.output(e.ID()); !bytes.Equal(got, stream(0, total)) || replayed != 0 {
					t.Errorf("the first watcher got %d bytes (%d replayed), want the whole stream live", len(got), replayed)
				}
			}
		})
	}
}

// With no watcher the process is never held back: it writes on past the
// window and the scrollback, which keeps the latest bytes only. A watcher
// that attaches then and does not ack gets one window of them, replayed;
// its acks get it the rest, then the exit.
func TestNoWatcherNeverBlocksAndTheScrollbackKeepsTheLatest(t *testing.T) {
	const (
		window     = 2048
		scrollback = 3000
		total      = 10 * scrollback
	)
	r, _ := newCountRegistry(t, session.Options{Window: window, Chunk: 1000, Scrollback: scrollback})
	s := startWith(t, r, nil)
	e := execArgv(t, s, "count", strconv.Itoa(total))
	select {
	case <-e.Done():
	case <-time.After(waitTimeout):
		t.Fatalf("the process with no watcher was held after %d bytes", e.Snapshot(nil).Output)
	}

	w := newWatcher("late", r, false)
	attach(t, s, w)
	w.waitOutput(t, e.ID(), window)
	time.Sleep(20 * time.Millisecond) // time for a wrong sender to overrun
	got, replayed := w.output(e.ID())
	if want := stream(total-scrollback, total-scrollback+window); !bytes.Equal(got, want) || replayed != window {
		t.Errorf("got %d bytes, %d replayed; want the window from the scrollback's start, replayed", len(got), replayed)
	}
	if exits := w.exitsOf(e.ID()); len(exits) > 0 {
		t.Errorf("the exit %v came before the replay was sent", exits)
	}
	w.autoAck.Store(true)
	e.Ack(w, window)
	w.waitExit(t, e.ID())
	got, replayed = w.output(e.ID())
	if !bytes.Equal(got, stream(total-scrollback, total)) || replayed != scrollback {
		t.Errorf("got %d bytes, %d replayed; want the scrollback's last %d bytes, replayed", len(got), replayed, scrollback)
	}
	checkFlags(t, w, e.ID())
}

// One watcher that acks all it gets loses nothing, even with a scrollback
// smaller than the window: the process must not run so far ahead of the
// one watcher that what it was not yet sent drops out of the scrollback.
func TestOneAckingWatcherLosesNothingWithASmallScrollback(t *testing.T) {
	const total = 300_000
	r, _ := newCountRegistry(t, session.Options{Window: 8192, Chunk: 1000, Scrollback: 1000})
	w := newWatcher("only", r, true)
	s := startWith(t, r, w)
	e := execArgv(t, s, "count", strconv.Itoa(total))
	w.waitExit(t, e.ID())
	if got, _ := w.output(e.ID()); !bytes.Equal(got, stream(0, total)) {
		t.Errorf("the only watcher got %d bytes, want the whole stream of %d", len(got), total)
	}
	checkFlags(t, w, e.ID())
}

// One watcher that never acks holds the process at exactly one window, as
// with one client before watchers were many, whether the scrollback is
// larger or smaller than the window; its acks let it go on.
func TestOneWatcherWithoutAcksHoldsTheProcessAtOneWindow(t *testing.T) {
	const window = 5000
	for _, scrollback := range []int{8000, 3000} {
		t.Run(fmt.Sprint("scrollback ", scrollback), func(t *testing.T) {
			r, _ := newCountRegistry(t, session.Options{Window: window, Chunk: 1000, Scrollback: scrollback})
			w := newWatcher("only", r, false)
			s := startWith(t, r, w)
			e := execArgv(t, s, "count", "-1")
			w.waitOutput(t, e.ID(), window)
			time.Sleep(20 * time.Millisecond) // time for a wrong pump to overrun
			if out := e.Snapshot(nil).Output; out != window {
				t.Fatalf("the process wrote %d bytes with nothing acked, want the window %d", out, window)
			}
			e.Ack(w, 1500)
			w.waitOutput(t, e.ID(), window+1500)
			time.Sleep(20 * time.Millisecond)
			got, _ := w.output(e.ID())
			if out := e.Snapshot(nil).Output; out != window+1500 || !bytes.Equal(got, stream(0, window+1500)) {
				t.Errorf("after an ack of 1500: wrote %d, sent %d bytes; want %d of the stream", out, len(got), window+1500)
			}
			checkFlags(t, w, e.ID())
		})
	}
}

// Of two watchers, one that never acks holds back neither the other nor
// the process: it gets exactly one window, and once it acks it goes on
// from the scrollback's start, flagged Resync, to the end.
func TestAStalledWatcherHoldsBackNeitherTheOtherNorTheProcess(t *testing.T) {
	const (
		window     = 1000
		scrollback = 3000
		total      = 50_000
	)
	r, _ := newCountRegistry(t, session.Options{Window: window, Chunk: 100, Scrollback: scrollback})
	acking := newWatcher("acking", r, true)
	stalled := newWatcher("stalled", r, false)
	s := startWith(t, r, acking)
	attach(t, s, stalled)
	e := execArgv(t, s, "count", strconv.Itoa(total))

	acking.waitExit(t, e.ID())
	<-e.Done()
	if got, _ := acking.output(e.ID()); !bytes.Equal(got, stream(0, total)) {
		t.Fatalf("the acking watcher got %d bytes, want the whole stream of %d", len(got), total)
	}
	// Its window may hold a gap too: its sender can lag behind a process
	// the other watcher drives.
	stalled.waitOutput(t, e.ID(), window)
	time.Sleep(20 * time.Millisecond) // time for a wrong sender to overrun
	if got, _ := stalled.output(e.ID()); len(got) != window {
		t.Fatalf("the stalled watcher got %d bytes, want one window", len(got))
	}
	if exits := stalled.exitsOf(e.ID()); len(exits) != 0 {
		t.Fatalf("the stalled watcher got the exit %v before its output", exits)
	}

	stalled.autoAck.Store(true)
	e.Ack(stalled, window)
	stalled.waitExit(t, e.ID())
	// After its ack it goes on from the scrollback's start, flagged
	// Resync, to the end.
	chunks := stalled.chunksOf(e.ID())
	seen, last := 0, -1
	for i, c := range chunks {
		if c.flags.Resync {
			last = i
		}
		if seen == window && !c.flags.Resync {
			t.Errorf("chunk %d, the first after the ack, is not flagged Resync", i)
		}
		seen += len(c.data)
	}
	var tail []byte
	for _, c := range chunks[max(last, 0):] {
		tail = append(tail, c.data...)
	}
	if !bytes.Equal(tail, stream(total-scrollback, total)) {
		t.Errorf("after the last resync the stalled watcher got %d bytes, want the scrollback's %d, the stream's last", len(tail), scrollback)
	}
}

// A watcher that stops acking and then leaves lets the process go on.
func TestLeavingStalledWatcherLetsTheProcessGoOn(t *testing.T) {
	const window = 1000
	tests := []struct {
		name  string
		leave func(s *session.Session, e *session.Exec, w session.Watcher)
	}{
		{"Unsubscribe", func(_ *session.Session, e *session.Exec, w session.Watcher) { e.Unsubscribe(w) }},
		{"Detach", func(s *session.Session, _ *session.Exec, w session.Watcher) { s.Detach(w) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newCountRegistry(t, session.Options{Window: window, Chunk: 100, Scrollback: 3000})
			w := newWatcher("stalled", r, false)
			s := startWith(t, r, w)
			e := execArgv(t, s, "count", "100000")
			w.waitOutput(t, e.ID(), window)
			tt.leave(s, e, w)
			select {
			case <-e.Done():
			case <-time.After(waitTimeout):
				t.Fatalf("the process is still held after its only watcher left: wrote %d bytes", e.Snapshot(nil).Output)
			}
			if out := e.Snapshot(nil).Output; out != 100000 {
				t.Errorf("the process wrote %d bytes, want all 100000", out)
			}
			if exits := w.exitsOf(e.ID()); len(exits) != 0 {
				t.Errorf("the watcher that left got exits %v", exits)
			}
		})
	}
}

// An exec that ended with nobody watching is replayed, then its exit, to
// the next watcher that attaches; once a watcher got its exit it is not
// replayed again.
func TestAnExecEndedUnwatchedIsReplayedOnce(t *testing.T) {
	const total = 500
	r, _ := newCountRegistry(t, session.Options{Window: 4096, Chunk: 100, Scrollback: 3000})
	s := startWith(t, r, nil)
	e := execArgv(t, s, "count", strconv.Itoa(total))
	<-e.Done()

	a := newWatcher("a", r, true)
	attach(t, s, a)
	a.waitExit(t, e.ID())
	got, replayed := a.output(e.ID())
	if !bytes.Equal(got, stream(0, total)) || replayed != total {
		t.Errorf("a got %d bytes, %d replayed; want the whole output replayed", len(got), replayed)
	}
	if exits := a.exitsOf(e.ID()); !slices.Equal(exits, []int{0}) {
		t.Errorf("a's exits = %v, want [0]", exits)
	}
	s.Detach(a)

	// b comes later: the exec's exit was told, so b gets nothing of it;
	// an exec after b attached shows that b is served.
	b := newWatcher("b", r, true)
	attach(t, s, b)
	later := execArgv(t, s, "count", "10")
	b.waitExit(t, later.ID())
	if got, _ := b.output(e.ID()); len(got) > 0 || len(b.exitsOf(e.ID())) > 0 {
		t.Errorf("b got %d bytes and exits %v of an exec whose exit a watcher got", len(got), b.exitsOf(e.ID()))
	}
	if got, replayed := b.output(later.ID()); !bytes.Equal(got, stream(0, 10)) || replayed != 0 {
		t.Errorf("b got %q (%d replayed) of the later exec, want it live", got, replayed)
	}
}

// Attaching a watcher that is attached already replays nothing again.
func TestAttachingTwiceReplaysNothing(t *testing.T) {
	r, be := newCountRegistry(t, session.Options{Window: 4096, Chunk: 100, Scrollback: 3000})
	s := startWith(t, r, nil)
	e := execArgv(t, s, "count", "600", "pause", "300")
	testwait.Until(t, "the process to pause", waitTimeout, func() bool { return e.Snapshot(nil).Output == 300 })
	w := newWatcher("w", r, true)
	attach(t, s, w)
	w.waitOutput(t, e.ID(), 300)
	var snap session.Snapshot
	ok, err := s.Attach(w, func(sn session.Snapshot) { snap = sn })
	if ok || err != nil {
		t.Fatalf("second Attach = %v, %v; want false, nil", ok, err)
	}
	if snap.ID != s.ID() || snap.Attached != 1 {
		t.Errorf("second Attach's snapshot = %+v, want the session with 1 attached", snap)
	}
	be.proc(0).release()
	w.waitExit(t, e.ID())
	if got, replayed := w.output(e.ID()); !bytes.Equal(got, stream(0, 600)) || replayed != 300 {
		t.Errorf("got %d bytes, %d replayed; want 600, the first 300 replayed once", len(got), replayed)
	}
	checkFlags(t, w, e.ID())
}

// A closing or closed session cannot be attached to.
func TestAttachToAClosingOrClosedSessionIsNotReady(t *testing.T) {
	be := &fakeBackend{killDelay: 300 * time.Millisecond}
	r := session.NewRegistry(be, session.Options{})
	t.Cleanup(func() { r.CloseAll(context.Background()) })
	s := startWith(t, r, nil)
	exec(t, s)
	closed := make(chan error, 1)
	go func() { closed <- s.Close(context.Background()) }()
	testwait.Until(t, "the session to be closing", waitTimeout, func() bool { return s.State() == session.StateClosing })
	w := newWatcher("late", r, true)
	if ok, err := s.Attach(w, func(session.Snapshot) { t.Error("ready called for a closing session") }); ok || !errors.Is(err, session.ErrNotReady) {
		t.Errorf("Attach while closing = %v, %v; want ErrNotReady", ok, err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Attach(w, nil); ok || !errors.Is(err, session.ErrNotReady) {
		t.Errorf("Attach when closed = %v, %v; want ErrNotReady", ok, err)
	}
	if st := w.statesSeen(); len(st) > 0 {
		t.Errorf("a watcher never attached was told states %v", st)
	}
}

// Every attached watcher is told each state change; one that detached is
// not.
func TestStateChangesGoToAttachedWatchers(t *testing.T) {
	be := &fakeBackend{gate: make(chan struct{})}
	r := session.NewRegistry(be, session.Options{})
	t.Cleanup(func() { r.CloseAll(context.Background()) })
	starter := newWatcher("starter", r, true)
	started := make(chan *session.Session, 1)
	go func() {
		s, err := r.Start(context.Background(), backend.StartSpec{Agent: "claude"}, nil, session.StartOptions{Watcher: starter})
		if err != nil {
			t.Errorf("Start: %v", err)
		}
		started <- s
	}()
	var id string
	testwait.Until(t, "the session to be listed", waitTimeout, func() bool {
		if list := r.List(nil); len(list) == 1 {
			id = list[0].ID
		}
		return id != ""
	})
	s, err := r.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	other, left := newWatcher("other", r, true), newWatcher("left", r, true)
	attach(t, s, other)
	attach(t, s, left)
	s.Detach(left)
	close(be.gate)
	<-started
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"ready", "closing", "closed"}
	for _, w := range []*watcher{starter, other} {
		if got := w.statesSeen(); !slices.Equal(got, want) {
			t.Errorf("%s was told %v, want %v", w, got, want)
		}
	}
	if got := left.statesSeen(); len(got) > 0 {
		t.Errorf("a detached watcher was told %v", got)
	}
}

// Ended execs beyond the bound are forgotten, the oldest first, so the
// execs a session lists stay bounded however many ran.
func TestEndedExecsAreForgottenBeyondTheBound(t *testing.T) {
	const (
		runs          = 60
		maxEndedExecs = 16 // exec.go's maxEndedExecs
	)
	r, _ := newCountRegistry(t, session.Options{Chunk: 100})
	w := newWatcher("w", r, true)
	s := startWith(t, r, w)
	var ids []string
	for range runs {
		e := execArgv(t, s, "count", "10")
		w.waitExit(t, e.ID())
		ids = append(ids, e.ID())
		// The exec that ended last may still be told to its watcher when
		// the bound is applied, so one more than the bound may be kept.
		if n := len(s.Snapshot(nil).Execs); n > maxEndedExecs+1 {
			t.Fatalf("after %d execs the session lists %d, want at most %d", len(ids), n, maxEndedExecs+1)
		}
	}
	for _, id := range ids[:runs-maxEndedExecs-1] {
		if _, err := r.Exec(id); !errors.Is(err, session.ErrExecNotFound) {
			t.Errorf("Exec(%s) of an old ended exec = %v, want ErrExecNotFound", id, err)
		}
	}
	for _, id := range ids[runs-maxEndedExecs:] {
		if _, err := r.Exec(id); err != nil {
			t.Errorf("Exec(%s) of a recent ended exec: %v", id, err)
		}
	}
}

// Closed sessions beyond the bound are forgotten, the oldest first.
func TestClosedSessionsAreForgottenBeyondTheBound(t *testing.T) {
	const (
		runs      = 40
		maxClosed = 32 // registry.go's maxClosed
	)
	r, _ := newCountRegistry(t, session.Options{})
	var ids []string
	for range runs {
		s := startWith(t, r, nil)
		execArgv(t, s, "count", "10")
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID())
	}
	for _, id := range ids[:runs-maxClosed] {
		if _, err := r.Get(id); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("Get(%s) of an old closed session = %v, want ErrNotFound", id, err)
		}
	}
	for _, id := range ids[runs-maxClosed:] {
		if _, err := r.Get(id); err != nil {
			t.Errorf("Get(%s) of a recent closed session: %v", id, err)
		}
	}
	if n := len(r.List(nil)); n != maxClosed {
		t.Errorf("List has %d sessions, want %d", n, maxClosed)
	}
	// A forgotten session's execs are forgotten with it.
	if _, err := r.Exec(ids[0] + "-1"); !errors.Is(err, session.ErrExecNotFound) {
		t.Errorf("Exec of a forgotten session's exec = %v, want ErrExecNotFound", err)
	}
}

// Egress records go to the attached watchers only.
func TestEgressGoesToAttachedWatchersOnly(t *testing.T) {
	be := &fakeBackend{}
	r := session.NewRegistry(be, session.Options{})
	t.Cleanup(func() { r.CloseAll(context.Background()) })
	a, b, never := newWatcher("a", r, true), newWatcher("b", r, true), newWatcher("never", r, true)
	s := startWith(t, r, a)
	attach(t, s, b)
	e := exec(t, s)
	e.Subscribe(never, false) // its output, not the session's records
	be.bottles[0].onEgress(egress.Record{Host: "one.test"})
	s.Detach(b)
	be.bottles[0].onEgress(egress.Record{Host: "two.test"})
	for _, tc := range []struct {
		w    *watcher
		want []string
	}{
		{a, []string{"one.test", "two.test"}},
		{b, []string{"one.test"}},
		{never, nil},
	} {
		if got := tc.w.egressSeen(); !slices.Equal(got, tc.want) {
			t.Errorf("%s got records %v, want %v", tc.w, got, tc.want)
		}
	}
}

// A question goes to the latest attached watcher that can ask; none that
// can is a deny.
func TestAskGoesToTheLatestWatcherThatCanAsk(t *testing.T) {
	type spec struct {
		canAsk bool
		answer string
	}
	tests := []struct {
		name     string
		watchers []spec // in attach order
		asked    []int  // how many questions each got
		want     string // the proxy's answer line
	}{
		{"the latest of two that can", []spec{{true, session.Deny}, {true, session.AllowOnce}}, []int{0, 1}, "answer 7 true"},
		{"one that cannot is skipped", []spec{{true, session.AllowOnce}, {false, ""}}, []int{1, 0}, "answer 7 true"},
		{"none that can", []spec{{false, ""}, {false, ""}}, []int{0, 0}, "answer 7 false"},
		{"none attached", nil, nil, "answer 7 false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &fakeBackend{}
			r := session.NewRegistry(be, session.Options{})
			t.Cleanup(func() { r.CloseAll(context.Background()) })
			s := startWith(t, r, nil)
			var ws []*watcher
			for i, sp := range tt.watchers {
				w := newWatcher(fmt.Sprint("w", i), r, true)
				w.canAsk, w.answer = sp.canAsk, sp.answer
				attach(t, s, w)
				ws = append(ws, w)
			}
			be.bottles[0].onEgress(egress.Record{Event: egress.EventAsk, ID: 7, Method: "CONNECT", Host: "x.test", Port: 443})
			if got := waitControl(t, be.bottles[0], 1); !slices.Equal(got, []string{tt.want}) {
				t.Errorf("the proxy was told %q, want %q", got, tt.want)
			}
			for i, w := range ws {
				w.mu.Lock()
				n := w.asked
				w.mu.Unlock()
				if n != tt.asked[i] {
					t.Errorf("%s was asked %d times, want %d", w, n, tt.asked[i])
				}
			}
		})
	}
}

// A watcher that stopped acking an exec that then ended holds up neither
// a kill nor the session's close: it is sent the exit at once, without
// the output it did not take.
func TestAStalledWatcherOfAnEndedExecGetsTheExitOnKillOrClose(t *testing.T) {
	const window = 1000
	tests := []struct {
		name string
		end  func(ctx context.Context, s *session.Session, e *session.Exec) error
	}{
		{"Kill", func(_ context.Context, _ *session.Session, e *session.Exec) error { e.Kill(); return nil }},
		{"Close", func(ctx context.Context, s *session.Session, _ *session.Exec) error { return s.Close(ctx) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newCountRegistry(t, session.Options{Window: window, Chunk: 100, Scrollback: 3000})
			acking := newWatcher("acking", r, true)
			stalled := newWatcher("stalled", r, false)
			s := startWith(t, r, acking)
			attach(t, s, stalled)
			e := execArgv(t, s, "count", "50000")
			acking.waitExit(t, e.ID())
			stalled.waitOutput(t, e.ID(), window)

			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := tt.end(ctx, s, e); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			stalled.waitExit(t, e.ID())
			if got, _ := stalled.output(e.ID()); len(got) != window {
				t.Errorf("the stalled watcher got %d bytes, want its window of %d", len(got), window)
			}
		})
	}
}

// gatedWatcher holds its first Output call until its gate is closed.
type gatedWatcher struct {
	*watcher
	gate chan struct{}
	once sync.Once
}

func (g *gatedWatcher) Output(exec string, data []byte, f session.OutputFlags) {
	g.once.Do(func() { <-g.gate })
	g.watcher.Output(exec, data, f)
}

// Output the process wrote before a kill, within the watcher's window,
// still reaches the watcher before the exit, as when the output went
// straight from the process to the client.
func TestOutputReadBeforeAKillIsSent(t *testing.T) {
	r, _ := newCountRegistry(t, session.Options{Window: 10_000, Chunk: 1000, Scrollback: 20_000})
	w := &gatedWatcher{watcher: newWatcher("slow", r, false), gate: make(chan struct{})}
	s := startWith(t, r, w)
	e := execArgv(t, s, "count", "-1")
	testwait.Until(t, "a window of output", waitTimeout, func() bool { return e.Snapshot(nil).Output == 10_000 })
	e.Kill()
	<-e.Done()
	close(w.gate)
	w.waitExit(t, e.ID())
	if got, _ := w.output(e.ID()); !bytes.Equal(got, stream(0, 10_000)) {
		t.Errorf("the watcher got %d bytes before the exit, want all %d the process wrote", len(got), 10_000)
	}
}
