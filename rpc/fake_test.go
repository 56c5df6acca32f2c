package rpc_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/internal/fakestart"
	"github.com/bottle-dev/bottle/internal/hostexec"
)

// fakeBackend is a backend.Backend that makes nothing real. It records
// what it "makes" and "removes" so tests can check that a cancelled start
// and a close leave nothing behind.
type fakeBackend struct {
	// gate, when set, holds every Start after its first step until the
	// gate is closed or the start is cancelled.
	gate chan struct{}
	// startErr, when set, fails every Start after its steps.
	startErr error
	// execErr, when set, fails every Exec.
	execErr error
	// askTimeout is each bottle's egress ask timeout; 0 gives 5 s.
	askTimeout time.Duration
	// fixedPolicy makes bottles whose proxy is not the built-in one.
	fixedPolicy bool

	mu      sync.Mutex
	events  []string
	bottles []*fakeBottle
}

func (b *fakeBackend) record(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, fmt.Sprintf(format, args...))
}

// Events returns what the backend did so far.
func (b *fakeBackend) Events() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.events)
}

// Bottles returns the bottles started so far.
func (b *fakeBackend) Bottles() []*fakeBottle {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.bottles)
}

func (b *fakeBackend) Plan(_ context.Context, spec backend.StartSpec) (*backend.Plan, error) {
	return &backend.Plan{
		Agent:        spec.Agent,
		Bottle:       "fake",
		Runtime:      "runc",
		RuntimeLabel: "runc (fake)",
		Image:        "fake:latest",
		Networks:     []string{"internal", "egress"},
		Allow:        []string{"api.example.test"},
		Command:      []string{"claude"},
		CopyIn:       []backend.CopyItem{{What: "prompt", To: "/home/agent/.prompt"}},
	}, nil
}

// Start walks fakestart's steps, recording each resource it "makes"; on
// cancellation or failure it records their removal, as a real backend
// must.
func (b *fakeBackend) Start(ctx context.Context, spec backend.StartSpec, progress backend.Progress) (backend.Bottle, error) {
	err := fakestart.Start{
		Gate:     b.gate,
		Err:      b.startErr,
		Progress: progress,
		Made:     func(step string) { b.record("made %s %s", step, spec.Session) },
		Removed:  func() { b.record("removed %s", spec.Session) },
	}.Run(ctx)
	if err != nil {
		return nil, err
	}
	bt := &fakeBottle{
		be:       b,
		onEgress: spec.OnEgress,
		info: backend.Info{
			Session:      spec.Session,
			Agent:        spec.Agent,
			Container:    "bottle-" + spec.Session + "-agent",
			ContainerID:  "c0ffee" + spec.Session,
			Runtime:      "runc",
			RuntimeLabel: "runc (fake)",
			Image:        "fake:latest",
			Home:         "/home/fake",
			Workspace:    "/home/fake/work",
			LivePolicy:   !b.fixedPolicy,
			Allow:        []string{"api.example.test"},
			Block:        []string{"blocked.example.test"},
			AskTimeout:   cmp.Or(b.askTimeout, 5*time.Second),
		},
	}
	b.mu.Lock()
	b.bottles = append(b.bottles, bt)
	b.mu.Unlock()
	return bt, nil
}

type fakeBottle struct {
	be       *fakeBackend
	info     backend.Info
	onEgress func(egress.Record)

	mu     sync.Mutex
	closes int
	procs  []*fakeProcess
}

func (bt *fakeBottle) Info() backend.Info { return bt.info }

// Closes counts Close calls.
func (bt *fakeBottle) Closes() int {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	return bt.closes
}

// Procs returns the processes started so far.
func (bt *fakeBottle) Procs() []*fakeProcess {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	return slices.Clone(bt.procs)
}

func (bt *fakeBottle) Exec(_ context.Context, spec backend.ExecSpec) (backend.Process, error) {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.closes > 0 {
		return nil, fmt.Errorf("%w: fake", backend.ErrClosed)
	}
	if bt.be.execErr != nil {
		return nil, bt.be.execErr
	}
	p := startFakeProcess(spec)
	bt.procs = append(bt.procs, p)
	return p, nil
}

// CopyIn counts the bytes of the files under hostPath.
func (bt *fakeBottle) CopyIn(_ context.Context, hostPath, containerPath string) (int64, error) {
	var n int64
	err := filepath.WalkDir(hostPath, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	bt.be.record("copied %s to %s", hostPath, containerPath)
	return n, err
}

// Archive runs tar on the host, as the bottle would in it.
func (bt *fakeBottle) Archive(ctx context.Context, containerPath string, w io.Writer) error {
	return hostexec.Archive(ctx, bt.info.Workspace, containerPath, w)
}

// Run runs argv on the host in the bottle's workspace folder, which a test
// makes when it needs Run (git, for one); elsewhere it fails to start.
func (bt *fakeBottle) Run(ctx context.Context, argv []string, in io.Reader, out io.Writer) (int, string, error) {
	return hostexec.Run(ctx, bt.info.Workspace, argv, in, out)
}

// SetPolicy records the policy line the proxy would get.
func (bt *fakeBottle) SetPolicy(_ context.Context, allow, block []string, client string) error {
	if !bt.info.LivePolicy {
		return backend.ErrPolicyFixed
	}
	bt.be.record("policy %s allow=%s block=%s client=%s", bt.info.Session, strings.Join(allow, ","), strings.Join(block, ","), client)
	return nil
}

// Answer records the answer the proxy would get.
func (bt *fakeBottle) Answer(_ context.Context, id uint64, allow bool) error {
	bt.be.record("answer %s %d %v", bt.info.Session, id, allow)
	return nil
}

// Egress hands rec up as the bottle's proxy would.
func (bt *fakeBottle) Egress(rec egress.Record) { bt.onEgress(rec) }

func (bt *fakeBottle) Close(context.Context) error {
	bt.mu.Lock()
	bt.closes++
	bt.mu.Unlock()
	bt.be.record("closed %s", bt.info.Session)
	return nil
}

// fakeProcess runs a tiny program chosen by argv[0]:
//
//	(no argv)      the agent: prints "agent ready\r\n", then as cat
//	cat            echoes its input until end of input, exits 0
//	print TEXT N   prints TEXT, exits N
//	yes            prints "y" forever
//	sleep          prints nothing until killed
//
// Output goes through a synchronous pipe, so a process whose output is not
// read blocks, like one writing to a full pty.
type fakeProcess struct {
	spec backend.ExecSpec
	yes  bool

	outR *io.PipeReader
	outW *io.PipeWriter
	inR  *io.PipeReader
	inW  *io.PipeWriter

	read     atomic.Int64 // output bytes read by the server
	code     atomic.Int64
	finished chan struct{} // the program ended
	closed   chan struct{}
	once     sync.Once

	mu      sync.Mutex
	resizes [][2]uint
}

var (
	_ backend.Backend = (*fakeBackend)(nil)
	_ backend.Bottle  = (*fakeBottle)(nil)
	_ backend.Process = (*fakeProcess)(nil)
)

// exitKilled is what Wait reports for a process whose connection closed.
const exitKilled = 137

func startFakeProcess(spec backend.ExecSpec) *fakeProcess {
	p := &fakeProcess{spec: spec, finished: make(chan struct{}), closed: make(chan struct{})}
	p.outR, p.outW = io.Pipe()
	p.inR, p.inW = io.Pipe()
	argv := spec.Argv
	if len(argv) == 0 {
		argv = []string{"agent"}
	}
	switch argv[0] {
	case "yes":
		p.yes = true
	case "sleep":
	case "print":
		code, _ := strconv.Atoi(argv[2])
		go p.run(code, func() { io.WriteString(p.outW, argv[1]) })
	case "agent":
		go p.run(0, func() {
			io.WriteString(p.outW, "agent ready\r\n")
			io.Copy(p.outW, p.inR)
		})
	default: // cat
		go p.run(0, func() { io.Copy(p.outW, p.inR) })
	}
	return p
}

func (p *fakeProcess) run(code int, program func()) {
	program()
	p.code.Store(int64(code))
	close(p.finished)
	p.outW.Close()
}

func (p *fakeProcess) Read(b []byte) (int, error) {
	if p.yes {
		select {
		case <-p.closed:
			return 0, io.ErrClosedPipe
		default:
		}
		for i := range b {
			b[i] = 'y'
		}
		p.read.Add(int64(len(b)))
		return len(b), nil
	}
	n, err := p.outR.Read(b)
	p.read.Add(int64(n))
	return n, err
}

func (p *fakeProcess) Write(b []byte) (int, error) { return p.inW.Write(b) }

func (p *fakeProcess) CloseInput() error { return p.inW.Close() }

func (p *fakeProcess) Resize(_ context.Context, cols, rows uint) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resizes = append(p.resizes, [2]uint{cols, rows})
	return nil
}

// Resizes returns the sizes applied so far.
func (p *fakeProcess) Resizes() [][2]uint {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.resizes)
}

func (p *fakeProcess) Wait(ctx context.Context) (int, error) {
	select {
	case <-p.finished:
		return int(p.code.Load()), nil
	case <-p.closed:
		return exitKilled, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

func (p *fakeProcess) Close() error {
	p.once.Do(func() {
		close(p.closed)
		p.outR.CloseWithError(io.ErrClosedPipe)
		p.inR.CloseWithError(io.ErrClosedPipe)
	})
	return nil
}

func (p *fakeProcess) Argv() []string { return p.spec.Argv }

// Kill ends the program the way a killed process ends: its connection
// closes.
func (p *fakeProcess) Kill(context.Context) error { return p.Close() }
