package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/auditlog"
	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/internal/testwait"
	"github.com/bottle-dev/bottle/session"
)

const waitTimeout = 10 * time.Second

func newRegistry(t *testing.T, be backend.Backend, window int) (*session.Registry, *events) {
	t.Helper()
	ev := newEvents()
	r := session.NewRegistry(be, session.Options{Window: window, Chunk: 1024})
	t.Cleanup(func() {
		if err := r.CloseAll(context.Background()); err != nil {
			t.Errorf("CloseAll: %v", err)
		}
	})
	return r, ev
}

func start(t *testing.T, r *session.Registry, ev *events) *session.Session {
	t.Helper()
	s, err := r.Start(context.Background(), backend.StartSpec{Agent: "claude"}, nil, session.StartOptions{Watcher: ev})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s
}

func exec(t *testing.T, s *session.Session) *session.Exec {
	t.Helper()
	e, err := s.Exec(context.Background(), backend.ExecSpec{Argv: []string{"yes"}}, func(*session.Exec) {})
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	return e
}

func TestLifecycle(t *testing.T) {
	be := &fakeBackend{}
	r, ev := newRegistry(t, be, 0)
	s := start(t, r, ev)
	if len(s.ID()) != 8 || s.State() != session.StateReady || s.Info().Container != "c-"+s.ID() {
		t.Fatalf("started session %s: state %s, info %+v", s.ID(), s.State(), s.Info())
	}
	if got, err := r.Get(s.ID()); err != nil || got != s {
		t.Fatalf("Get = %v, %v", got, err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(context.Background(), s.ID()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if s.State() != session.StateClosed || be.bottles[0].closeCount() != 1 {
		t.Errorf("after two closes: state %s, backend closes %d; want closed, 1", s.State(), be.bottles[0].closeCount())
	}
	if _, err := s.Exec(context.Background(), backend.ExecSpec{}, func(*session.Exec) {}); !errors.Is(err, session.ErrNotReady) {
		t.Errorf("Exec on a closed session = %v, want ErrNotReady", err)
	}
	if _, err := s.CopyIn(context.Background(), "/a", "/b"); !errors.Is(err, session.ErrNotReady) {
		t.Errorf("CopyIn on a closed session = %v, want ErrNotReady", err)
	}
	if _, err := r.Get("nope"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get unknown = %v, want ErrNotFound", err)
	}
	if _, err := r.Exec("nope"); !errors.Is(err, session.ErrExecNotFound) {
		t.Errorf("Exec unknown = %v, want ErrExecNotFound", err)
	}
}

func TestFailedStartLeavesNothing(t *testing.T) {
	be := &fakeBackend{startErr: backend.ErrEngineUnavailable}
	r, ev := newRegistry(t, be, 0)
	_, err := r.Start(context.Background(), backend.StartSpec{Agent: "claude"}, nil, session.StartOptions{Watcher: ev})
	if !errors.Is(err, backend.ErrEngineUnavailable) {
		t.Fatalf("Start = %v, want the backend's error", err)
	}
	if list := r.List(nil); len(list) != 0 {
		t.Errorf("List after a failed start = %+v, want empty", list)
	}
}

func TestStartCancelledByCaller(t *testing.T) {
	be := &fakeBackend{gate: make(chan struct{})}
	r, ev := newRegistry(t, be, 0)
	ctx, cancel := context.WithCancelCause(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := r.Start(ctx, backend.StartSpec{Agent: "claude"}, nil, session.StartOptions{Watcher: ev})
		errc <- err
	}()
	testwait.Until(t, "the start to begin", waitTimeout, func() bool { made, _ := be.counts(); return made == 1 })
	if list := r.List(nil); len(list) != 1 || list[0].State != session.StateStarting {
		t.Fatalf("List during start = %+v, want one starting", list)
	}
	cause := errors.New("user gave up")
	cancel(cause)
	if err := <-errc; !errors.Is(err, cause) {
		t.Errorf("Start = %v, want the cancel's cause", err)
	}
	if _, removed := be.counts(); removed != 1 {
		t.Errorf("backend removed %d starts, want 1", removed)
	}
	if list := r.List(nil); len(list) != 0 {
		t.Errorf("List after the cancel = %+v, want empty", list)
	}
}

func TestCloseWhileStarting(t *testing.T) {
	tests := []struct {
		name  string
		close func(r *session.Registry, id string) error
		want  error
		state session.State
	}{
		{"Close", func(r *session.Registry, id string) error { return r.Close(context.Background(), id) }, session.ErrNotReady, session.StateClosed},
		{"CloseAll", func(r *session.Registry, _ string) error { return r.CloseAll(context.Background()) }, session.ErrShuttingDown, session.StateClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &fakeBackend{gate: make(chan struct{})}
			r, ev := newRegistry(t, be, 0)
			errc := make(chan error, 1)
			go func() {
				_, err := r.Start(context.Background(), backend.StartSpec{Agent: "claude"}, nil, session.StartOptions{Watcher: ev})
				errc <- err
			}()
			var id string
			testwait.Until(t, "the session to be listed", waitTimeout, func() bool {
				list := r.List(nil)
				if len(list) == 1 {
					id = list[0].ID
				}
				return id != ""
			})
			if err := tt.close(r, id); err != nil {
				t.Fatalf("close: %v", err)
			}
			if err := <-errc; !errors.Is(err, tt.want) {
				t.Errorf("Start = %v, want %v", err, tt.want)
			}
			if _, removed := be.counts(); removed != 1 {
				t.Errorf("backend removed %d starts, want 1", removed)
			}
			// Closing it again is fine: it stays, as closed.
			if err := r.Close(context.Background(), id); err != nil {
				t.Errorf("Close again: %v", err)
			}
			if list := r.List(nil); len(list) != 1 || list[0].State != tt.state {
				t.Errorf("List = %+v, want the session %s", list, tt.state)
			}
		})
	}
}

func TestCloseAllRefusesNewSessions(t *testing.T) {
	be := &fakeBackend{}
	r, ev := newRegistry(t, be, 0)
	var ss []*session.Session
	for range 5 {
		ss = append(ss, start(t, r, ev))
	}
	if err := r.CloseAll(context.Background()); err != nil {
		t.Fatalf("CloseAll: %v", err)
	}
	for i, s := range ss {
		if s.State() != session.StateClosed || be.bottles[i].closeCount() != 1 {
			t.Errorf("session %s: state %s, closes %d", s.ID(), s.State(), be.bottles[i].closeCount())
		}
	}
	if _, err := r.Start(context.Background(), backend.StartSpec{Agent: "claude"}, nil, session.StartOptions{Watcher: ev}); !errors.Is(err, session.ErrShuttingDown) {
		t.Errorf("Start after CloseAll = %v, want ErrShuttingDown", err)
	}
}

func TestManySessionsConcurrently(t *testing.T) {
	be := &fakeBackend{}
	r, ev := newRegistry(t, be, 4096)
	var wg sync.WaitGroup
	ids := make([]string, 20)
	for i := range ids {
		wg.Go(func() {
			s, err := r.Start(context.Background(), backend.StartSpec{Agent: fmt.Sprint("a", i)}, nil, session.StartOptions{Watcher: ev})
			if err != nil {
				t.Errorf("Start: %v", err)
				return
			}
			e, err := s.Exec(context.Background(), backend.ExecSpec{}, func(*session.Exec) {})
			if err != nil {
				t.Errorf("Exec: %v", err)
				return
			}
			ids[i] = e.ID()
		})
	}
	wg.Wait()
	if err := r.CloseAll(context.Background()); err != nil {
		t.Fatalf("CloseAll: %v", err)
	}
	slices.Sort(ids)
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Errorf("exec ids not unique: %v", ids)
	}
	for _, id := range ids {
		if exits := ev.exitsOf(id); len(exits) != 1 {
			t.Errorf("exec %s: %d exits, want exactly 1", id, len(exits))
		}
	}
	if len(ev.after) > 0 {
		t.Errorf("output after exit for %v", ev.after)
	}
}

func TestOutputStaysWithinTheWindow(t *testing.T) {
	const window = 10_000
	be := &fakeBackend{}
	r, ev := newRegistry(t, be, window)
	s := start(t, r, ev)
	e := exec(t, s)
	p := be.bottles[0].proc(0)

	testwait.Until(t, "a full window", waitTimeout, func() bool { return ev.outputOf(e.ID()) == window })
	time.Sleep(20 * time.Millisecond) // time for a wrong pump to overrun
	if got := p.read.Load(); got != window {
		t.Fatalf("read %d bytes with nothing acked, want the window %d", got, window)
	}
	e.Ack(ev, 2500)
	testwait.Until(t, "the acked bytes to be refilled", waitTimeout, func() bool { return ev.outputOf(e.ID()) == window+2500 })
	// An ack beyond what was sent opens the window no wider than it is.
	e.Ack(ev, 1<<40)
	testwait.Until(t, "the window to be refilled", waitTimeout, func() bool { return ev.outputOf(e.ID()) == 2*window+2500 })
	time.Sleep(20 * time.Millisecond)
	if got := p.read.Load(); got != 2*window+2500 {
		t.Errorf("read %d bytes after an over-ack, want %d", got, 2*window+2500)
	}
	snap := e.Snapshot(ev)
	if snap.Sent-snap.Acked != window || !snap.Running {
		t.Errorf("snapshot = %+v, want a full window outstanding", snap)
	}

	e.Kill()
	<-e.Done()
	testwait.Until(t, "the exit to be delivered", waitTimeout, func() bool { return len(ev.exitsOf(e.ID())) > 0 })
	if exits := ev.exitsOf(e.ID()); !slices.Equal(exits, []int{130}) {
		t.Errorf("exits = %v, want the backend's code once", exits)
	}
	if snap := e.Snapshot(nil); snap.Running || snap.Code != 130 {
		t.Errorf("snapshot after kill = %+v", snap)
	}
}

func TestInputAndResizeReachTheProcess(t *testing.T) {
	be := &fakeBackend{}
	r, ev := newRegistry(t, be, 0)
	s := start(t, r, ev)
	e := exec(t, s)
	p := be.bottles[0].proc(0)

	for _, in := range []string{"a", "bc", "d"} {
		e.Input([]byte(in))
	}
	e.CloseInput()
	e.Input([]byte("dropped after end of input"))
	e.Resize(100, 40)
	testwait.Until(t, "input and size", waitTimeout, func() bool {
		input, eof, sizes := p.state()
		return string(input) == "abcd" && eof && slices.Contains(sizes, [2]uint{100, 40})
	})
}

func TestInputAfterAResizeWaitsForIt(t *testing.T) {
	// The engine takes a while to apply a size; what the user typed after
	// resizing must still see the new size (`stty size` prints it).
	be := &fakeBackend{resizeDelay: 200 * time.Millisecond}
	r, ev := newRegistry(t, be, 0)
	s := start(t, r, ev)
	e := exec(t, s)
	p := be.bottles[0].proc(0)

	e.Input([]byte("a"))
	e.Resize(132, 43)
	e.Input([]byte("b"))
	e.Resize(80, 24)
	e.Resize(100, 30)
	e.Input([]byte("c"))
	testwait.Until(t, "input c", waitTimeout, func() bool { return slices.Contains(p.events(), "input c") })

	// Sizes overtaken by a later one may be skipped, so "b" needs some
	// size before it, and "c" the last one.
	evs := p.events()
	firstSize := slices.IndexFunc(evs, func(ev string) bool { return strings.HasPrefix(ev, "size ") })
	inB, inC := slices.Index(evs, "input b"), slices.Index(evs, "input c")
	last := slices.Index(evs, "size 100x30")
	if firstSize < 0 || inB < firstSize || last < 0 || inC < last || inB > inC {
		t.Errorf("the process saw %q: want input b after a size, and input c after 100x30", evs)
	}
}

func TestEgressIsTaggedWithTheSession(t *testing.T) {
	be := &fakeBackend{}
	r, ev := newRegistry(t, be, 0)
	s := start(t, r, ev)
	be.bottles[0].onEgress(egress.Record{Session: "forged", Host: "example.test"})
	if want := s.ID() + " example.test"; !slices.Equal(ev.egress, []string{want}) {
		t.Errorf("egress = %v, want [%s]", ev.egress, want)
	}
}

// The registry keeps each session's egress records in its audit file, as
// the records it hands up: the session's id in them, whatever the proxy's
// stream said; records after the close are not kept.
func TestEgressRecordsAreKeptInTheSessionsAuditFile(t *testing.T) {
	dir := t.TempDir()
	be := &fakeBackend{}
	ev := newEvents()
	r := session.NewRegistry(be, session.Options{AuditDir: dir})
	t.Cleanup(func() { r.CloseAll(context.Background()) })
	s := start(t, r, ev)
	recs := []egress.Record{
		{Time: time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC), Session: "forged", Event: egress.EventDecision, Method: "CONNECT", Host: "a.test", Port: 443, Decision: egress.DecisionAllow, Rule: "a.test"},
		{Time: time.Date(2026, 11, 1, 10, 0, 1, 0, time.UTC), Event: egress.EventDecision, Method: "GET", Host: "b.test", Port: 80, Decision: egress.DecisionDeny, Rule: "default-deny", Reason: "not on the allowlist"},
	}
	for _, rec := range recs {
		be.bottles[0].onEgress(rec)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	be.bottles[0].onEgress(egress.Record{Host: "after.test"})

	data, err := os.ReadFile(auditlog.Path(dir, s.ID()))
	if err != nil {
		t.Fatal(err)
	}
	var got []egress.Record
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec egress.Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		got = append(got, rec)
	}
	want := slices.Clone(recs)
	for i := range want {
		want[i].Session = s.ID()
	}
	if !slices.Equal(got, want) {
		t.Errorf("the audit file holds\n%+v\nwant\n%+v", got, want)
	}
}

func TestNoAuditDirKeepsNothing(t *testing.T) {
	t.Setenv("BOTTLE_STATE", t.TempDir())
	be := &fakeBackend{}
	r, ev := newRegistry(t, be, 0)
	s := start(t, r, ev)
	be.bottles[0].onEgress(egress.Record{Host: "example.test"})
	if sums, err := auditlog.List(auditlog.DefaultDir()); err != nil || len(sums) > 0 {
		t.Errorf("sessions kept with no AuditDir: %v, %v (session %s)", sums, err, s.ID())
	}
}

func TestCloseKillsEachExecBeforeRemovingTheBottle(t *testing.T) {
	for _, tc := range []struct {
		name      string
		killDelay time.Duration
	}{
		{"kill returns at once", 0},
		{"kill takes a while", 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := &fakeBackend{killDelay: tc.killDelay}
			warns := &warnings{}
			ev := newEvents()
			r := session.NewRegistry(be, session.Options{Chunk: 1024, Logger: slog.New(warns)})
			t.Cleanup(func() { r.CloseAll(context.Background()) })
			s := start(t, r, ev)
			exec(t, s)
			exec(t, s)
			if err := s.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			bt := be.bottles[0]
			for i := range 2 {
				if !bt.proc(i).killed.Load() {
					t.Errorf("exec %d: the backend's kill never landed", i)
				}
			}
			bt.mu.Lock()
			unkilled := bt.unkilledAtClose
			bt.mu.Unlock()
			if unkilled != 0 {
				t.Errorf("the bottle was closed with %d execs not yet killed", unkilled)
			}
			if w := warns.all(); len(w) > 0 {
				t.Errorf("a normal close logged warnings: %q", w)
			}
		})
	}
}

// warnings is a slog handler that keeps the warnings and errors logged.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
	return nil
}

func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}
