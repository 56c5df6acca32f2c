package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.lsp.dev/jsonrpc2"

	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/rpc"

	"github.com/bottle-dev/bottle/internal/lockedbuf"
	"github.com/bottle-dev/bottle/internal/testwait"
)

var (
	binary  string // bottle-rpc built for this test run
	workDir string
)

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	var err error
	workDir, err = os.MkdirTemp("", "bottle-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)
	binary = filepath.Join(workDir, "bottle-rpc")
	build := exec.Command("go", "build", "-o", binary, "github.com/bottle-dev/bottle/cmd/bottle-rpc")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building bottle-rpc: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	if left := leftovers(); left != "" {
		fmt.Fprintf(os.Stderr, "FAIL: bottles left on the engine after the tests:\n%s\n", left)
		return 1
	}
	return code
}

// leftovers lists labelled resources whose server is gone. Every server
// this run started has exited by now, so anything of theirs is a leak;
// bottles of servers still running (other packages' tests) are not.
func leftovers() string {
	ctx := context.Background()
	eng, err := dockerbottle.New(ctx, dockerbottle.Options{ProxyBinary: binary})
	if err != nil {
		return err.Error()
	}
	defer eng.Close()
	orphans, err := eng.GC(ctx, true)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, r := range orphans {
		out = append(out, fmt.Sprintf("  %s %s (bottle %s)", r.Kind, r.Name, r.Session))
	}
	if len(out) > 0 {
		eng.GC(ctx, false)
	}
	return strings.Join(out, "\n")
}

// editor is a fake editor: it runs bottle-rpc and speaks to it over pipes.
type editor struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	conn   jsonrpc2.Conn
	stderr *lockedbuf.Buffer
	waited chan struct{}
	exit   error

	mu       sync.Mutex
	notes    []note
	outputs  map[string]*bytes.Buffer
	exits    map[string]rpc.ExitParams
	progress []rpc.ProgressParams
	egress   []rpc.EgressParams
	asked    []approval // bottle/egressApproval requests, held for the test to answer
	changed  chan struct{}
	autoAck  bool
	noAck    map[string]bool // execs whose output is not acknowledged
	calls    atomic.Int32    // jsonrpc2 numbers calls 1, 2, ... in the order they are made
}

// approval is a bottle/egressApproval request and its replier.
type approval struct {
	params rpc.EgressApprovalParams
	reply  jsonrpc2.Replier
}

type note struct {
	method string
	params json.RawMessage
	at     time.Time
}

// newEditor starts bottle-rpc serve and initializes it.
func newEditor(t testing.TB, extraEnv ...string) *editor {
	t.Helper()
	e := startServer(t, extraEnv...)
	var res rpc.InitializeResult
	e.call(rpc.MethodInitialize, rpc.InitializeParams{ClientInfo: &rpc.ClientInfo{Name: "fake editor"}}, &res)
	if res.ServerInfo.Name != "bottle-rpc" {
		t.Fatalf("initialize: serverInfo %+v", res.ServerInfo)
	}
	if err := e.conn.Notify(context.Background(), rpc.MethodInitialized, struct{}{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// serverCmd is bottle-rpc with args, its audit files kept with the test
// run rather than in the user's state folder.
func serverCmd(args []string, extraEnv ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(os.Environ(), "BOTTLE_STATE="+filepath.Join(workDir, "state")), extraEnv...)
	return cmd
}

// startServer runs bottle-rpc without initializing it.
func startServer(t testing.TB, extraEnv ...string) *editor {
	t.Helper()
	return launch(t, []string{"serve"}, extraEnv, func(e *editor) jsonrpc2.Handler { return e.handle })
}

// launch runs bottle-rpc with args (and env added to the test's) behind a
// fake editor whose messages handler serves; it is stopped, its input
// closed, when the test ends.
func launch(t testing.TB, args, env []string, handler func(*editor) jsonrpc2.Handler) *editor {
	t.Helper()
	cmd := serverCmd(args, env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	e := &editor{t: t, cmd: cmd, stdin: stdin, stderr: &lockedbuf.Buffer{}, waited: make(chan struct{}),
		outputs: map[string]*bytes.Buffer{}, exits: map[string]rpc.ExitParams{}, noAck: map[string]bool{}, changed: make(chan struct{}), autoAck: true}
	cmd.Stderr = e.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { e.exit = cmd.Wait(); close(e.waited) }()
	e.conn = jsonrpc2.NewConn(jsonrpc2.NewStream(struct {
		io.Reader
		io.WriteCloser
	}{stdout, stdin}))
	e.conn.Go(context.Background(), handler(e))
	name := strings.Join(args, " ")
	t.Cleanup(func() {
		e.conn.Close()
		stdin.Close()
		select {
		case <-e.waited:
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
			t.Errorf("bottle-rpc %s did not exit within 2 minutes of its input closing", name)
		}
		if t.Failed() {
			t.Logf("bottle-rpc %s stderr:\n%s", name, e.stderr.String())
		}
	})
	return e
}

// waitExited fails the test unless bottle-rpc exits within d; why says
// what should have made it exit.
func (e *editor) waitExited(d time.Duration, why string) {
	e.t.Helper()
	select {
	case <-e.waited:
	case <-time.After(d):
		e.t.Fatalf("bottle-rpc did not exit within %v after %s", d, why)
	}
}

func (e *editor) handle(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
	e.mu.Lock()
	params := req.Params()
	var ack *rpc.AckParams
	switch req.Method() {
	case rpc.MethodOutput:
		var p rpc.OutputParams
		json.Unmarshal(req.Params(), &p)
		// The bytes are kept in outputs; the note keeps only whose they
		// were, so that benchmarks do not hold every byte twice.
		params, _ = json.Marshal(map[string]string{"exec": p.Exec})
		if e.outputs[p.Exec] == nil {
			e.outputs[p.Exec] = &bytes.Buffer{}
		}
		e.outputs[p.Exec].Write(p.Data)
		if e.autoAck && !e.noAck[p.Exec] {
			ack = &rpc.AckParams{Exec: p.Exec, Bytes: int64(len(p.Data))}
		}
	case rpc.MethodExecExit:
		var p rpc.ExitParams
		json.Unmarshal(req.Params(), &p)
		e.exits[p.Exec] = p
	case rpc.MethodProgress:
		var p rpc.ProgressParams
		json.Unmarshal(req.Params(), &p)
		e.progress = append(e.progress, p)
	case rpc.MethodEgress:
		var p rpc.EgressParams
		json.Unmarshal(req.Params(), &p)
		e.egress = append(e.egress, p)
	case rpc.MethodEgressApproval:
		var p rpc.EgressApprovalParams
		json.Unmarshal(req.Params(), &p)
		e.asked = append(e.asked, approval{p, reply})
	}
	e.notes = append(e.notes, note{req.Method(), params, time.Now()})
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
	if ack != nil {
		e.conn.Notify(ctx, rpc.MethodAck, ack)
	}
	if _, isCall := req.(*jsonrpc2.Call); isCall && req.Method() != rpc.MethodEgressApproval {
		return reply(ctx, nil, nil)
	}
	return nil
}

// call makes a request that must succeed.
func (e *editor) call(method string, params, result any) {
	e.t.Helper()
	if err := e.try(method, params, result); err != nil {
		e.t.Fatalf("%s: %v", method, err)
	}
}

// try makes a request and returns its error, a *jsonrpc2.Error for
// protocol errors.
func (e *editor) try(method string, params, result any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e.calls.Add(1)
	_, err := e.conn.Call(ctx, method, params, result)
	return err
}

// wantCode asserts that err is a JSON-RPC error with code.
func wantCode(t *testing.T, err error, code jsonrpc2.Code) *jsonrpc2.Error {
	t.Helper()
	var rpcErr *jsonrpc2.Error
	if !errors.As(err, &rpcErr) {
		t.Fatalf("got %v, want a JSON-RPC error with code %d", err, code)
	}
	if rpcErr.Code != code {
		t.Fatalf("got code %d (%s), want %d", rpcErr.Code, rpcErr.Message, code)
	}
	return rpcErr
}

// waitUntil waits until cond, checked under the editor's lock, holds; each
// message the editor takes in wakes it.
func (e *editor) waitUntil(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	testwait.UntilChanged(e.t, what, timeout, func() (bool, <-chan struct{}) {
		e.mu.Lock()
		defer e.mu.Unlock()
		return cond(), e.changed
	})
}

func (e *editor) output(exec string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if b := e.outputs[exec]; b != nil {
		return b.String()
	}
	return ""
}

// waitOutput waits until an exec's output contains want.
func (e *editor) waitOutput(exec, want string) string {
	e.t.Helper()
	e.waitUntil(fmt.Sprintf("output %q from exec %s", want, exec), 2*time.Minute, func() bool {
		return e.outputs[exec] != nil && strings.Contains(e.outputs[exec].String(), want)
	})
	return e.output(exec)
}

// waitExit waits for an exec's bottle/exit.
func (e *editor) waitExit(exec string) rpc.ExitParams {
	e.t.Helper()
	var p rpc.ExitParams
	e.waitUntil("bottle/exit of "+exec, 2*time.Minute, func() bool {
		var ok bool
		p, ok = e.exits[exec]
		return ok
	})
	return p
}

// start starts a bottle and closes it when the test ends.
func (e *editor) start(params rpc.StartParams) rpc.StartResult {
	e.t.Helper()
	var res rpc.StartResult
	e.call(rpc.MethodStart, params, &res)
	e.t.Cleanup(func() { e.try(rpc.MethodClose, rpc.CloseParams{Session: res.Session}, nil) })
	return res
}

// exec runs argv and returns the exec id.
func (e *editor) exec(session string, tty bool, argv ...string) string {
	e.t.Helper()
	var res rpc.ExecResult
	e.call(rpc.MethodExec, rpc.ExecParams{Session: session, Argv: argv, Tty: &tty, Cols: 100, Rows: 30}, &res)
	return res.Exec
}

func (e *editor) input(exec, s string) {
	e.t.Helper()
	if err := e.conn.Notify(context.Background(), rpc.MethodInput, rpc.InputParams{Exec: exec, Data: []byte(s)}); err != nil {
		e.t.Fatal(err)
	}
}

// writeManifest writes a bottle.yaml with one agent "sh" on the base image.
func writeManifest(t testing.TB, runtime string, allow ...string) string {
	t.Helper()
	if len(allow) == 0 {
		allow = []string{"x.test"}
	}
	path := filepath.Join(t.TempDir(), "bottle.yaml")
	y := fmt.Sprintf("agents:\n  sh: {bottle: b, command: [bash], prompt: \"be careful\"}\nbottles:\n  b: {image: \"bottle/base:bookworm\", runtime: %s, egress: {allow: [%s]}}\n",
		runtime, strings.Join(allow, ", "))
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// resourcesWhere lists the labelled resources on the engine that match.
func resourcesWhere(t *testing.T, match func(dockerbottle.Resource) bool) []dockerbottle.Resource {
	t.Helper()
	ctx := context.Background()
	eng, err := dockerbottle.New(ctx, dockerbottle.Options{ProxyBinary: binary})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	all, err := eng.Resources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []dockerbottle.Resource
	for _, r := range all {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// assertGone checks that nothing labelled with session is on the engine.
func assertGone(t *testing.T, session string) {
	t.Helper()
	for _, r := range resourcesWhere(t, func(r dockerbottle.Resource) bool { return r.Session == session }) {
		t.Errorf("bottle %s left %s %s behind", session, r.Kind, r.Name)
	}
}
