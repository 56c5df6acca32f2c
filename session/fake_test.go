package session_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/internal/fakestart"
	"github.com/bottle-dev/bottle/internal/hostexec"
	"github.com/bottle-dev/bottle/session"
)

// fakeBackend starts fakeBottles with fakestart's start: gate, when set,
// holds it after its first step, startErr fails it, and a failed or
// cancelled start counts the removal of what it made.
type fakeBackend struct {
	gate        chan struct{}
	startErr    error
	resizeDelay time.Duration // how long each process's Resize takes
	killDelay   time.Duration // how long each process's Kill takes
	askTimeout  time.Duration // each bottle's egress ask timeout; 0 gives 5 s

	mu      sync.Mutex
	made    int
	removed int
	bottles []*fakeBottle
}

func (b *fakeBackend) Plan(context.Context, backend.StartSpec) (*backend.Plan, error) {
	return &backend.Plan{}, nil
}

func (b *fakeBackend) Start(ctx context.Context, spec backend.StartSpec, progress backend.Progress) (backend.Bottle, error) {
	err := fakestart.Start{
		Gate:     b.gate,
		Err:      b.startErr,
		Progress: progress,
		Made: func(string) {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.made++
		},
		Removed: func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.removed++
		},
	}.Run(ctx)
	if err != nil {
		return nil, err
	}
	bt := &fakeBottle{
		info: backend.Info{Session: spec.Session, Agent: spec.Agent, Container: "c-" + spec.Session,
			LivePolicy: true, Allow: []string{"a.test"}, Block: []string{"b.test"}, AskTimeout: cmp.Or(b.askTimeout, 5*time.Second)},
		onEgress: spec.OnEgress, resizeDelay: b.resizeDelay, killDelay: b.killDelay,
	}
	b.mu.Lock()
	b.bottles = append(b.bottles, bt)
	b.mu.Unlock()
	return bt, nil
}

// counts returns how many resources the starts made, and how many starts
// removed theirs.
func (b *fakeBackend) counts() (made, removed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.made, b.removed
}

type fakeBottle struct {
	info        backend.Info
	onEgress    func(egress.Record)
	resizeDelay time.Duration
	killDelay   time.Duration

	mu     sync.Mutex
	closes int
	procs  []*endless
	// control is what the bottle's proxy was told, in order: "policy
	// ALLOW BLOCK CLIENT" and "answer ID ALLOW".
	control []string
	// unkilledAtClose counts the processes no Kill had reached when the
	// bottle was first closed.
	unkilledAtClose int
}

func (bt *fakeBottle) Info() backend.Info { return bt.info }

func (bt *fakeBottle) Exec(context.Context, backend.ExecSpec) (backend.Process, error) {
	p := &endless{closed: make(chan struct{}), resizeDelay: bt.resizeDelay, killDelay: bt.killDelay}
	bt.mu.Lock()
	bt.procs = append(bt.procs, p)
	bt.mu.Unlock()
	return p, nil
}

func (bt *fakeBottle) CopyIn(context.Context, string, string) (int64, error) { return 0, nil }

// Archive runs tar on the host, as the bottle would in it.
func (bt *fakeBottle) Archive(ctx context.Context, containerPath string, w io.Writer) error {
	return hostexec.Archive(ctx, bt.info.Workspace, containerPath, w)
}

// Run runs argv on the host in the bottle's workspace folder, which a test
// makes when it needs Run (git, for one); elsewhere it fails to start.
func (bt *fakeBottle) Run(ctx context.Context, argv []string, in io.Reader, out io.Writer) (int, string, error) {
	return hostexec.Run(ctx, bt.info.Workspace, argv, in, out)
}

func (bt *fakeBottle) Close(context.Context) error {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.closes == 0 {
		for _, p := range bt.procs {
			if !p.killed.Load() {
				bt.unkilledAtClose++
			}
		}
	}
	bt.closes++
	return nil
}

func (bt *fakeBottle) SetPolicy(_ context.Context, allow, block []string, client string) error {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	bt.control = append(bt.control, fmt.Sprintf("policy %s %s %s", strings.Join(allow, ","), strings.Join(block, ","), client))
	return nil
}

func (bt *fakeBottle) Answer(_ context.Context, id uint64, allow bool) error {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	bt.control = append(bt.control, fmt.Sprintf("answer %d %v", id, allow))
	return nil
}

func (bt *fakeBottle) controlLines() []string {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	return slices.Clone(bt.control)
}

func (bt *fakeBottle) closeCount() int {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	return bt.closes
}

func (bt *fakeBottle) proc(i int) *endless {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	return bt.procs[i]
}

// endless is a process with endless output that records its input and
// sizes, and in log both in the order they reached it.
type endless struct {
	read        atomic.Int64
	killed      atomic.Bool // a Kill reached the process
	killDelay   time.Duration
	closed      chan struct{}
	once        sync.Once
	resizeDelay time.Duration

	mu       sync.Mutex
	input    []byte
	inputEOF bool
	sizes    [][2]uint
	log      []string
}

func (p *endless) Read(b []byte) (int, error) {
	select {
	case <-p.closed:
		return 0, io.ErrClosedPipe
	default:
	}
	p.read.Add(int64(len(b)))
	return len(b), nil
}

func (p *endless) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.input = append(p.input, b...)
	p.log = append(p.log, "input "+string(b))
	return len(b), nil
}

func (p *endless) CloseInput() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inputEOF = true
	return nil
}

func (p *endless) Resize(_ context.Context, cols, rows uint) error {
	time.Sleep(p.resizeDelay)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sizes = append(p.sizes, [2]uint{cols, rows})
	p.log = append(p.log, fmt.Sprintf("size %dx%d", cols, rows))
	return nil
}

func (p *endless) state() (input []byte, eof bool, sizes [][2]uint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.input), p.inputEOF, slices.Clone(p.sizes)
}

func (p *endless) events() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.log)
}

func (p *endless) Wait(ctx context.Context) (int, error) {
	select {
	case <-p.closed:
		return 130, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

func (p *endless) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

// events records what a registry delivers.
type events struct {
	mu     sync.Mutex
	output map[string]int
	exits  map[string][]int
	egress []string
	after  []string // execs whose output came after their exit
	answer string   // what Ask answers; "" waits for its context
	asked  []string
}

func newEvents() *events {
	return &events{output: map[string]int{}, exits: map[string][]int{}}
}

func (e *events) Output(exec string, data []byte, _ session.OutputFlags) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.exits[exec]) > 0 {
		e.after = append(e.after, exec)
	}
	e.output[exec] += len(data)
}

func (e *events) Exit(exec string, code int, _ error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.exits[exec] = append(e.exits[exec], code)
}

func (e *events) Egress(rec egress.Record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.egress = append(e.egress, rec.Session+" "+rec.Host)
}

func (e *events) State(string, session.State, error) {}

// Ask answers with answer, or waits for ctx when answer is "" (a user who
// never answers).
func (e *events) Ask(ctx context.Context, q egress.Record) (string, bool) {
	e.mu.Lock()
	e.asked = append(e.asked, fmt.Sprintf("%s %s:%d", q.Session, q.Host, q.Port))
	answer := e.answer
	e.mu.Unlock()
	if answer == "" {
		<-ctx.Done()
		return session.AllowSession, true
	}
	return answer, true
}

func (e *events) questions() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.asked)
}

func (e *events) outputOf(exec string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.output[exec]
}

func (e *events) exitsOf(exec string) []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.exits[exec])
}

var (
	_ backend.Backend = (*fakeBackend)(nil)
	_ backend.Process = (*endless)(nil)
)

func (p *endless) Argv() []string { return []string{"endless"} }

// Kill fails on a done context, as the engine's client does: a kill that
// teardown sends with the session's own (cancelled) context never lands.
// It takes killDelay, so that a bottle closed before the kill returned
// shows in killedBeforeClose.
func (p *endless) Kill(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", backend.ErrEngineUnavailable, ctx.Err())
	case <-time.After(p.killDelay):
	}
	p.killed.Store(true)
	return p.Close()
}
