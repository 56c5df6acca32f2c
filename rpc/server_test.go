package rpc_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/auditlog"
	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/internal/fakestart"
	"github.com/bottle-dev/bottle/internal/testwait"
	"github.com/bottle-dev/bottle/manifest"
	"github.com/bottle-dev/bottle/rpc"
	"github.com/bottle-dev/bottle/session"
)

// checkError fails unless e has the code and kind.
func checkError(t *testing.T, what string, e *wireError, code int, kind string) {
	t.Helper()
	if e == nil {
		t.Fatalf("%s: want error %d (%s), got success", what, code, kind)
	}
	if e.Code != code || e.Data.Kind != kind {
		t.Fatalf("%s: got error %d kind %q (%q), want %d kind %q", what, e.Code, e.Data.Kind, e.Message, code, kind)
	}
	if e.Data.Hint == "" {
		t.Errorf("%s: error %d has no hint", what, e.Code)
	}
}

func TestInitializeHandshake(t *testing.T) {
	h := newHarness(t, rpc.Options{Window: 1 << 20})
	c := h.client

	// Nothing but initialize (and exit) is served before initialize.
	checkError(t, "list before initialize", c.callErr(rpc.MethodList, nil), -32002, rpc.KindNotInitialized)
	checkError(t, "start before initialize", c.callErr(rpc.MethodStart, rpc.StartParams{Agent: "claude"}), -32002, rpc.KindNotInitialized)

	res := h.initialize()
	if res.ServerInfo.Name != "bottle-rpc" || res.ServerInfo.Version != "test" {
		t.Errorf("serverInfo = %+v, want bottle-rpc test", res.ServerInfo)
	}
	caps := res.Capabilities
	if caps.FlowControl.Window != 1<<20 || caps.FlowControl.MaxChunk != 16<<10 {
		t.Errorf("flowControl = %+v, want the configured window and 16 KiB chunks", caps.FlowControl)
	}
	if caps.MaxMessageSize != rpc.DefaultMaxMessage || !caps.WorkDoneProgress {
		t.Errorf("capabilities = %+v", caps)
	}
	for _, m := range []string{rpc.MethodStart, rpc.MethodExec, rpc.MethodAck, rpc.MethodKill} {
		if !slices.Contains(caps.Methods, m) {
			t.Errorf("capabilities.methods %v lacks %s", caps.Methods, m)
		}
	}

	checkError(t, "second initialize", c.callErr(rpc.MethodInitialize, nil), -32600, rpc.KindAlreadyInitialized)
	var list rpc.ListResult
	c.mustCall(rpc.MethodList, nil, &list)
	if len(list.Sessions) != 0 {
		t.Errorf("list = %+v, want no sessions", list)
	}
}

func TestPlan(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("agents:\n  x:\n    bottle: nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, rpc.Options{})
	h.initialize()

	var plan rpc.PlanResult
	h.client.mustCall(rpc.MethodPlan, rpc.PlanParams{Agent: "claude", Cwd: dir}, &plan)
	if plan.Agent != "claude" || plan.RuntimeLabel != "runc (fake)" || plan.Image != "fake:latest" {
		t.Errorf("plan = %+v", plan)
	}
	if got := h.be.Events(); len(got) != 0 {
		t.Errorf("plan had side effects: %v", got)
	}

	tests := []struct {
		name   string
		params rpc.PlanParams
		code   int
		kind   string
		field  string
	}{
		{"no agent", rpc.PlanParams{}, -32602, rpc.KindInvalidParams, "agent"},
		{"unknown agent", rpc.PlanParams{Agent: "nobody"}, -32602, rpc.KindUnknownAgent, "agent"},
		{"relative cwd", rpc.PlanParams{Agent: "claude", Cwd: "work"}, -32602, rpc.KindInvalidParams, "cwd"},
		{"missing cwd", rpc.PlanParams{Agent: "claude", Cwd: filepath.Join(dir, "none")}, -32602, rpc.KindInvalidParams, "cwd"},
		{"cwd a file", rpc.PlanParams{Agent: "claude", Cwd: filepath.Join(dir, "bad.yaml")}, -32602, rpc.KindInvalidParams, "cwd"},
		{"missing manifest", rpc.PlanParams{Agent: "claude", Manifest: filepath.Join(dir, "none.yaml")}, -32102, rpc.KindManifestUnreadable, "manifest"},
		{"invalid manifest", rpc.PlanParams{Agent: "x", Manifest: "bad.yaml", Cwd: dir}, -32102, rpc.KindManifestInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := h.client.callErr(rpc.MethodPlan, tt.params)
			checkError(t, tt.name, e, tt.code, tt.kind)
			if e.Data.Field != tt.field {
				t.Errorf("field = %q, want %q", e.Data.Field, tt.field)
			}
			switch tt.kind {
			case rpc.KindUnknownAgent:
				if !slices.Contains(e.Data.Agents, "claude") {
					t.Errorf("agents = %v, want the manifest's agents", e.Data.Agents)
				}
			case rpc.KindManifestInvalid:
				if len(e.Data.Problems) == 0 || e.Data.Problems[0].Line == 0 || e.Data.Problems[0].File != bad {
					t.Errorf("problems = %+v, want each with file and line", e.Data.Problems)
				}
			}
		})
	}
}

func TestStartReportsProgressBeforeReply(t *testing.T) {
	h := newHarness(t, rpc.Options{})
	h.initialize()
	c := h.client

	id := c.send(rpc.MethodStart, map[string]any{"agent": "claude", "workDoneToken": "tok-1"})
	resp := c.response(strconv.Itoa(id))
	if resp.Error != nil {
		t.Fatalf("start: %+v", resp.Error)
	}
	var res rpc.StartResult
	if err := json.Unmarshal(resp.Result, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Session) != 8 || res.Container != "bottle-"+res.Session+"-agent" || res.RuntimeLabel != "runc (fake)" || res.Image != "fake:latest" {
		t.Errorf("start result = %+v", res)
	}

	// The log up to the reply holds begin, one report per step, end.
	var kinds []string
	lastPct := -1
	for _, m := range c.messages() {
		if m.isResponse() && string(m.ID) == strconv.Itoa(id) {
			break
		}
		if m.Method != rpc.MethodProgress {
			continue
		}
		var p rpc.ProgressParams
		if err := json.Unmarshal(m.Params, &p); err != nil {
			t.Fatal(err)
		}
		if string(p.Token) != `"tok-1"` {
			t.Errorf("progress token = %s, want the request's", p.Token)
		}
		kinds = append(kinds, p.Value.Kind)
		if p.Value.Percentage != nil {
			if *p.Value.Percentage < lastPct {
				t.Errorf("percentage went back from %d to %d", lastPct, *p.Value.Percentage)
			}
			lastPct = *p.Value.Percentage
		}
	}
	want := []string{"begin"}
	for range fakestart.Steps {
		want = append(want, "report")
	}
	want = append(want, "end")
	if !slices.Equal(kinds, want) {
		t.Errorf("progress before the reply = %v, want %v", kinds, want)
	}

	// Without a token there is no progress.
	before := len(c.messages())
	h.startSession()
	for _, m := range c.messages()[before:] {
		if m.Method == rpc.MethodProgress {
			t.Errorf("progress without a workDoneToken: %s", m.Params)
		}
	}
}

func TestStartErrorsMapToCodes(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code int
		kind string
	}{
		{"engine", fmt.Errorf("dial docker: %w", backend.ErrEngineUnavailable), -32100, rpc.KindEngineUnavailable},
		{"runtime", fmt.Errorf("runsc: %w", backend.ErrRuntimeUnavailable), -32105, rpc.KindRuntimeUnavailable},
		{"image", fmt.Errorf("build: %w", backend.ErrImage), -32106, rpc.KindImageUnavailable},
		{"name", fmt.Errorf("bottle-x: %w", backend.ErrNameTaken), -32104, rpc.KindNameTaken},
		{"invalid", fmt.Errorf("%w: cwd", backend.ErrInvalid), -32602, rpc.KindInvalidParams},
		{"manifest", errors.Join(&manifest.Error{File: "b.yaml", Line: 3, Field: "agents.x", Msg: "bad"}), -32102, rpc.KindManifestInvalid},
		{"other", errors.New("disk full"), -32603, rpc.KindInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarnessWith(t, &fakeBackend{startErr: tt.err}, rpc.Options{})
			h.initialize()
			e := h.client.callErr(rpc.MethodStart, rpc.StartParams{Agent: "claude"})
			checkError(t, "start", e, tt.code, tt.kind)
			if !strings.Contains(e.Message, tt.err.Error()) && tt.kind != rpc.KindManifestInvalid {
				t.Errorf("message %q does not carry the cause %q", e.Message, tt.err)
			}
			// A failed start leaves no session behind.
			var list rpc.ListResult
			h.client.mustCall(rpc.MethodList, nil, &list)
			if len(list.Sessions) != 0 {
				t.Errorf("list after a failed start = %+v", list.Sessions)
			}
		})
	}
}

func TestEngineGoneFailsTheSessionAndLaterRequestsSayWhy(t *testing.T) {
	be := &fakeBackend{}
	h := newHarnessWith(t, be, rpc.Options{})
	h.initialize()
	sess := h.startSession()
	be.execErr = fmt.Errorf("dial unix /var/run/docker.sock: %w", backend.ErrEngineUnavailable)

	e := h.client.callErr(rpc.MethodExec, rpc.ExecParams{Session: sess})
	checkError(t, "the exec that found the engine gone", e, -32100, rpc.KindEngineUnavailable)
	// From then on the session is failed, whatever the engine does next:
	// the answer names the old cause and says to start a new session.
	be.execErr = nil
	e = h.client.callErr(rpc.MethodExec, rpc.ExecParams{Session: sess})
	checkError(t, "an exec on the failed session", e, -32107, rpc.KindSessionNotReady)
	if !strings.Contains(e.Message, "docker.sock") || !strings.Contains(e.Data.Hint, "start a new one") {
		t.Errorf("error %q (hint %q) does not give the cause and the way out", e.Message, e.Data.Hint)
	}
	var list rpc.ListResult
	h.client.mustCall(rpc.MethodList, nil, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].State != "failed" {
		t.Errorf("list = %+v, want the session failed", list.Sessions)
	}
}

func TestCancelStartTearsDownAndAnswersCancelled(t *testing.T) {
	be := &fakeBackend{gate: make(chan struct{})}
	h := newHarnessWith(t, be, rpc.Options{})
	h.initialize()
	c := h.client

	id := c.send(rpc.MethodStart, map[string]any{"agent": "claude", "workDoneToken": 7})
	c.waitFor("the start's first step", func() bool {
		return slices.ContainsFunc(c.log, func(m message) bool {
			return m.Method == rpc.MethodProgress && strings.Contains(string(m.Params), "report")
		})
	})
	var list rpc.ListResult
	c.mustCall(rpc.MethodList, nil, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].State != "starting" {
		t.Fatalf("list during start = %+v, want one starting session", list.Sessions)
	}

	c.notify(rpc.MethodCancelRequest, map[string]any{"id": id})
	resp := c.response(strconv.Itoa(id))
	checkError(t, "cancelled start", resp.Error, -32800, rpc.KindCancelled)

	// By the time the client hears of the cancel, what was made is gone.
	events := be.Events()
	if len(events) == 0 || !strings.HasPrefix(events[len(events)-1], "removed ") {
		t.Errorf("backend events = %v, want the start's resources removed", events)
	}
	c.mustCall(rpc.MethodList, nil, &list)
	if len(list.Sessions) != 0 {
		t.Errorf("list after the cancel = %+v, want none", list.Sessions)
	}
	// Cancelling a finished request is harmless.
	c.notify(rpc.MethodCancelRequest, map[string]any{"id": id})
	c.mustCall(rpc.MethodList, nil, &list)
}

func TestExecStreamsOutputThenExit(t *testing.T) {
	h := newHarness(t, rpc.Options{})
	h.initialize()
	c := h.client
	sess := h.startSession()

	execID := c.send(rpc.MethodExec, rpc.ExecParams{Session: sess, Argv: []string{"cat"}, Cols: 100, Rows: 30})
	resp := c.response(strconv.Itoa(execID))
	var res rpc.ExecResult
	if err := json.Unmarshal(resp.Result, &res); err != nil || res.Exec == "" {
		t.Fatalf("exec result %s: %v", resp.Result, err)
	}
	exec := res.Exec

	c.notify(rpc.MethodInput, rpc.InputParams{Exec: exec, Data: []byte("hello\n")})
	c.waitOutput(exec, "hello\n")
	c.notify(rpc.MethodResize, rpc.ResizeParams{Exec: exec, Cols: 120, Rows: 40})
	// Input sent as a request is answered too.
	c.mustCall(rpc.MethodInput, rpc.InputParams{Exec: exec, Data: []byte{0, 0xff, 'x'}}, nil)
	c.waitOutput(exec, "\x00\xffx")
	c.notify(rpc.MethodInput, rpc.InputParams{Exec: exec, EOF: true})
	exit := c.waitExit(exec)
	if exit.Code != 0 || exit.Error != "" {
		t.Errorf("exit = %+v, want code 0", exit)
	}

	proc := h.be.Bottles()[0].Procs()[0]
	if !proc.spec.Tty || proc.spec.Cols != 100 || proc.spec.Rows != 30 {
		t.Errorf("exec spec = %+v, want a 100x30 tty", proc.spec)
	}
	testwait.Until(t, "the resize", waitTimeout, func() bool { return slices.Contains(proc.Resizes(), [2]uint{120, 40}) })

	// Order on the wire: the exec reply, then output only, then one exit.
	var order []string
	for _, m := range c.messages() {
		switch {
		case m.isResponse() && string(m.ID) == strconv.Itoa(execID):
			order = append(order, "reply")
		case m.Method == rpc.MethodOutput && strings.Contains(string(m.Params), exec):
			if order[len(order)-1] != "output" {
				order = append(order, "output")
			}
		case m.Method == rpc.MethodExecExit:
			order = append(order, "exit")
		}
	}
	if !slices.Equal(order, []string{"reply", "output", "exit"}) {
		t.Errorf("order on the wire = %v, want reply, output, exit", order)
	}
	if got := string(c.outputOf(exec)); got != "hello\n\x00\xffx" {
		t.Errorf("output = %q", got)
	}
}

func TestExecPrograms(t *testing.T) {
	tests := []struct {
		name   string
		argv   []string
		output string
		code   int
	}{
		{"agent by default", nil, "agent ready\r\n", -1},
		{"exit code passed through", []string{"print", "bye", "3"}, "bye", 3},
		{"no output", []string{"print", "", "0"}, "", 0},
	}
	h := newHarness(t, rpc.Options{})
	h.initialize()
	sess := h.startSession()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exec := h.exec(sess, tt.argv...)
			h.client.waitOutput(exec, tt.output)
			if tt.code < 0 {
				h.client.mustCall(rpc.MethodKill, rpc.KillParams{Exec: exec}, nil)
			}
			exit := h.client.waitExit(exec)
			if tt.code >= 0 && exit.Code != tt.code {
				t.Errorf("exit = %+v, want code %d", exit, tt.code)
			}
			if got := string(h.client.outputOf(exec)); got != tt.output {
				t.Errorf("output = %q, want %q", got, tt.output)
			}
		})
	}
}

func TestKillEndsExecNotSession(t *testing.T) {
	h := newHarness(t, rpc.Options{})
	h.initialize()
	c := h.client
	sess := h.startSession()
	exec := h.exec(sess, "sleep")

	c.mustCall(rpc.MethodKill, rpc.KillParams{Exec: exec}, nil)
	if exit := c.waitExit(exec); exit.Code != 137 {
		t.Errorf("exit after kill = %+v, want the backend's code 137", exit)
	}
	c.mustCall(rpc.MethodKill, rpc.KillParams{Exec: exec}, nil) // idempotent
	checkError(t, "kill unknown", c.callErr(rpc.MethodKill, rpc.KillParams{Exec: "nope"}), -32103, rpc.KindExecNotFound)

	var list rpc.ListResult
	c.mustCall(rpc.MethodList, nil, &list)
	if list.Sessions[0].State != "ready" {
		t.Errorf("session after kill = %+v, want ready", list.Sessions[0])
	}
	h.client.waitExit(h.exec(sess, "print", "still here", "0"))
	c.mu.Lock()
	n := len(c.exits[exec])
	c.mu.Unlock()
	if n != 1 {
		t.Errorf("%d exits for one exec, want exactly 1", n)
	}
}

func TestCp(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(file, []byte("twelve bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, rpc.Options{})
	h.initialize()
	sess := h.startSession()

	tests := []struct {
		name   string
		params rpc.CpParams
		code   int
		kind   string
		field  string
	}{
		{"missing host path", rpc.CpParams{Session: sess, HostPath: filepath.Join(dir, "none"), ContainerPath: "/tmp/x"}, -32602, rpc.KindInvalidParams, "hostPath"},
		{"relative host path", rpc.CpParams{Session: sess, HostPath: "notes.txt", ContainerPath: "/tmp/x"}, -32602, rpc.KindInvalidParams, "hostPath"},
		{"relative container path", rpc.CpParams{Session: sess, HostPath: file, ContainerPath: "workspace/x"}, -32602, rpc.KindInvalidParams, "containerPath"},
		{"no container path", rpc.CpParams{Session: sess, HostPath: file}, -32602, rpc.KindInvalidParams, "containerPath"},
		{"root container path", rpc.CpParams{Session: sess, HostPath: file, ContainerPath: "/"}, -32602, rpc.KindInvalidParams, "containerPath"},
		{"container path cleaned to root", rpc.CpParams{Session: sess, HostPath: file, ContainerPath: "/tmp/../"}, -32602, rpc.KindInvalidParams, "containerPath"},
		{"unknown session", rpc.CpParams{Session: "deadbeef", HostPath: file, ContainerPath: "/tmp/x"}, -32101, rpc.KindSessionNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := h.client.callErr(rpc.MethodCp, tt.params)
			checkError(t, tt.name, e, tt.code, tt.kind)
			if e.Data.Field != tt.field {
				t.Errorf("field = %q, want %q", e.Data.Field, tt.field)
			}
		})
	}
	for _, hostPath := range []string{file, dir} {
		var res rpc.CpResult
		h.client.mustCall(rpc.MethodCp, rpc.CpParams{Session: sess, HostPath: hostPath, ContainerPath: "/home/agent/workspace/"}, &res)
		if res.Bytes != 12 {
			t.Errorf("cp %s: bytes = %d, want 12", hostPath, res.Bytes)
		}
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	h := newHarness(t, rpc.Options{})
	h.initialize()
	c := h.client
	sess := h.startSession()
	exec := h.exec(sess, "sleep")

	c.mustCall(rpc.MethodClose, rpc.CloseParams{Session: sess}, nil)
	// The running exec ended with the session: the backend's code for a
	// killed process, or none when the session closed first.
	if exit := c.waitExit(exec); exit.Code != 137 && (exit.Code != -1 || !strings.Contains(exit.Error, "session closed")) {
		t.Errorf("exit of an exec whose session closed = %+v", exit)
	}
	c.mustCall(rpc.MethodClose, rpc.CloseParams{Session: sess}, nil)
	if n := h.be.Bottles()[0].Closes(); n != 1 {
		t.Errorf("backend Close called %d times, want 1", n)
	}
	checkError(t, "close unknown", c.callErr(rpc.MethodClose, rpc.CloseParams{Session: "deadbeef"}), -32101, rpc.KindSessionNotFound)
	checkError(t, "exec in closed", c.callErr(rpc.MethodExec, rpc.ExecParams{Session: sess}), -32107, rpc.KindSessionNotReady)

	var list rpc.ListResult
	c.mustCall(rpc.MethodList, nil, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].State != "closed" {
		t.Errorf("list after close = %+v, want the session as closed", list.Sessions)
	}
}

func TestList(t *testing.T) {
	h := newHarness(t, rpc.Options{})
	h.initialize()
	c := h.client
	s1, s2 := h.startSession(), h.startSession()
	done := h.exec(s1, "print", "x", "4")
	c.waitExit(done)
	running := h.exec(s1, "sleep")

	var list rpc.ListResult
	c.mustCall(rpc.MethodList, rpc.ListParams{}, &list)
	if len(list.Sessions) != 2 || list.Sessions[0].Session != s1 || list.Sessions[1].Session != s2 {
		t.Fatalf("sessions = %+v, want %s and %s in start order", list.Sessions, s1, s2)
	}
	got := list.Sessions[0]
	if got.State != "ready" || got.Agent != "claude" || got.Container == "" || got.Runtime != "runc" {
		t.Errorf("session = %+v", got)
	}
	if len(got.Execs) != 2 {
		t.Fatalf("execs = %+v, want 2", got.Execs)
	}
	if e := got.Execs[0]; e.Exec != done || e.Running || e.Code == nil || *e.Code != 4 || !slices.Equal(e.Argv, []string{"print", "x", "4"}) {
		t.Errorf("finished exec = %+v, want code 4", e)
	}
	if e := got.Execs[1]; e.Exec != running || !e.Running || e.Code != nil {
		t.Errorf("running exec = %+v, want running without code", e)
	}
	if len(list.Sessions[1].Execs) != 0 {
		t.Errorf("second session execs = %+v, want none", list.Sessions[1].Execs)
	}
}

func TestShutdownClosesEverySession(t *testing.T) {
	h := newHarness(t, rpc.Options{})
	h.initialize()
	c := h.client
	var execs []string
	for range 3 {
		execs = append(execs, h.exec(h.startSession(), "sleep"))
	}
	resp := c.call(rpc.MethodShutdown, nil)
	if resp.Error != nil || string(resp.Result) != "null" {
		t.Fatalf("shutdown = %s %+v, want null", resp.Result, resp.Error)
	}
	// Teardown is complete when shutdown is answered.
	for _, b := range h.be.Bottles() {
		if b.Closes() != 1 {
			t.Errorf("bottle %s closed %d times by shutdown, want 1", b.info.Session, b.Closes())
		}
	}
	for _, e := range execs {
		c.waitExit(e)
	}
	checkError(t, "list after shutdown", c.callErr(rpc.MethodList, nil), -32108, rpc.KindShuttingDown)
	checkError(t, "start after shutdown", c.callErr(rpc.MethodStart, rpc.StartParams{Agent: "claude"}), -32108, rpc.KindShuttingDown)

	c.notify(rpc.MethodExit, nil)
	if err := h.serveResult(); err != nil {
		t.Errorf("Serve = %v, want nil after exit", err)
	}
	if code := h.srv.ExitCode(); code != 0 {
		t.Errorf("exit code = %d, want 0 after shutdown", code)
	}
}

func TestShutdownCancelsStartInProgress(t *testing.T) {
	be := &fakeBackend{gate: make(chan struct{})}
	h := newHarnessWith(t, be, rpc.Options{})
	h.initialize()
	c := h.client
	id := c.send(rpc.MethodStart, rpc.StartParams{Agent: "claude"})
	testwait.Until(t, "the start to begin", waitTimeout, func() bool { return len(be.Events()) > 0 })

	c.mustCall(rpc.MethodShutdown, nil, nil)
	checkError(t, "start during shutdown", c.response(strconv.Itoa(id)).Error, -32108, rpc.KindShuttingDown)
	if events := be.Events(); !strings.HasPrefix(events[len(events)-1], "removed ") {
		t.Errorf("backend events = %v, want the start's resources removed", events)
	}
}

func TestEndOfInputClosesEverySession(t *testing.T) {
	tests := []struct {
		name     string
		shutdown bool
		end      func(h *harness)
		exitCode int
	}{
		{"EOF", false, func(h *harness) { h.in.Close() }, 1},
		{"exit without shutdown", false, func(h *harness) { h.client.notify(rpc.MethodExit, nil) }, 1},
		{"EOF after shutdown", true, func(h *harness) { h.in.Close() }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, rpc.Options{})
			h.initialize()
			var execs []string
			for range 2 {
				execs = append(execs, h.exec(h.startSession(), "yes"))
			}
			if tt.shutdown {
				h.client.mustCall(rpc.MethodShutdown, nil, nil)
			}
			tt.end(h)
			if err := h.serveResult(); err != nil {
				t.Errorf("Serve = %v, want nil", err)
			}
			for _, b := range h.be.Bottles() {
				if b.Closes() != 1 {
					t.Errorf("bottle %s closed %d times, want 1", b.info.Session, b.Closes())
				}
			}
			// The exits queued during teardown were still written.
			for _, e := range execs {
				h.client.waitExit(e)
			}
			if code := h.srv.ExitCode(); code != tt.exitCode {
				t.Errorf("exit code = %d, want %d", code, tt.exitCode)
			}
		})
	}
}

// A client that dies takes its end of the server's output with it: the
// server's next write fails, and it tears everything down at once rather
// than waiting for its input to end.
func TestClientGoneClosesEverySession(t *testing.T) {
	h := newHarness(t, rpc.Options{})
	h.initialize()
	for range 2 {
		h.exec(h.startSession(), "yes")
	}
	h.out.CloseWithError(errors.New("client died"))
	if err := h.serveResult(); err == nil || !strings.Contains(err.Error(), "client died") {
		t.Errorf("Serve = %v, want the write error", err)
	}
	for _, b := range h.be.Bottles() {
		if b.Closes() != 1 {
			t.Errorf("bottle %s closed %d times, want 1", b.info.Session, b.Closes())
		}
	}
	if code := h.srv.ExitCode(); code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}
}

func TestBadInputIsAnsweredAndServingGoesOn(t *testing.T) {
	tests := []struct {
		name  string
		raw   string // a whole frame, or a body when it does not start with "Content-Length"
		id    string // the id the error must carry
		code  int
		kind  string
		field string
	}{
		{"malformed JSON", `{"jsonrpc":"2.0","id":1,"method":`, "null", -32700, rpc.KindParseError, ""},
		{"not an object", `42`, "null", -32600, rpc.KindInvalidRequest, ""},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"bottle/list"}]`, "null", -32600, rpc.KindInvalidRequest, ""},
		{"wrong version", `{"jsonrpc":"1.0","id":"v","method":"bottle/list"}`, `"v"`, -32600, rpc.KindInvalidRequest, ""},
		{"id too large", `{"jsonrpc":"2.0","id":99999999999,"method":"bottle/list"}`, "99999999999", -32600, rpc.KindInvalidRequest, ""},
		{"no Content-Length", "Content-Type: text/plain\r\n\r\n", "null", -32700, rpc.KindParseError, ""},
		{"bad Content-Length", "Content-Length: lots\r\n\r\n", "null", -32700, rpc.KindParseError, ""},
		{"unknown method", `{"jsonrpc":"2.0","id":"m","method":"bottle/fly","params":{}}`, `"m"`, -32601, rpc.KindMethodNotFound, ""},
		{"params of the wrong type", `{"jsonrpc":"2.0","id":3,"method":"bottle/resize","params":{"exec":"x","cols":"wide"}}`, "3", -32602, rpc.KindInvalidParams, "cols"},
		{"params not an object", `{"jsonrpc":"2.0","id":4,"method":"bottle/list","params":[1]}`, "4", -32602, rpc.KindInvalidParams, ""},
		{"bad base64", `{"jsonrpc":"2.0","id":5,"method":"bottle/input","params":{"exec":"x","data":"!!"}}`, "5", -32602, rpc.KindInvalidParams, ""},
		{"missing session", `{"jsonrpc":"2.0","id":6,"method":"bottle/exec","params":{}}`, "6", -32602, rpc.KindInvalidParams, "session"},
		{"unknown session", `{"jsonrpc":"2.0","id":7,"method":"bottle/exec","params":{"session":"0badcafe"}}`, "7", -32101, rpc.KindSessionNotFound, ""},
		{"unknown exec", `{"jsonrpc":"2.0","id":8,"method":"bottle/ack","params":{"exec":"0badcafe-1","bytes":1}}`, "8", -32103, rpc.KindExecNotFound, ""},
		{"oversized", `{"jsonrpc":"2.0","method":"bottle/input","params":{"data":"` + strings.Repeat("A", 2000) + `"},"id":9}`, "9", -32600, rpc.KindMessageTooLarge, ""},
	}
	h := newHarness(t, rpc.Options{MaxMessage: 1000})
	h.initialize()
	c := h.client
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(c.messages())
			if strings.HasPrefix(tt.raw, "Content-") {
				c.writeRaw([]byte(tt.raw))
			} else {
				c.writeBody([]byte(tt.raw))
			}
			var resp message
			c.waitFor("the error response", func() bool {
				for _, m := range c.log[before:] {
					if m.isResponse() {
						resp = m
						return true
					}
				}
				return false
			})
			if string(resp.ID) != tt.id {
				t.Errorf("id = %s, want %s", resp.ID, tt.id)
			}
			checkError(t, tt.name, resp.Error, tt.code, tt.kind)
			if resp.Error.Data.Field != tt.field {
				t.Errorf("field = %q, want %q", resp.Error.Data.Field, tt.field)
			}
			// The server still serves.
			c.mustCall(rpc.MethodList, nil, nil)
		})
	}
}

// A message of 100 MB is skipped without being held in memory, answered
// with its id, and the next request is served.
func TestHundredMegabyteMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 100 MB")
	}
	h := newHarness(t, rpc.Options{})
	h.initialize()
	c := h.client

	const size = 100 << 20
	head := `{"jsonrpc":"2.0","method":"bottle/input","params":{"exec":"x","data":"`
	tail := `"},"id":"big"}`
	fill := size - len(head) - len(tail)
	c.writeRaw([]byte(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", size, head)))
	chunk := []byte(strings.Repeat("QUFB", 16<<10))
	for fill > 0 {
		n := min(fill, len(chunk))
		c.writeRaw(chunk[:n])
		fill -= n
	}
	c.writeRaw([]byte(tail))

	resp := c.response(`"big"`)
	checkError(t, "100 MB message", resp.Error, -32600, rpc.KindMessageTooLarge)
	if resp.Error.Data.Limit != rpc.DefaultMaxMessage || !strings.Contains(resp.Error.Message, "16 MiB") {
		t.Errorf("error = %+v, want it to name the 16 MiB limit", resp.Error)
	}
	c.mustCall(rpc.MethodList, nil, nil)
}

func TestFlowControlStallsOnlyTheUnackedExec(t *testing.T) {
	const window = 64 << 10
	h := newHarness(t, rpc.Options{Window: window})
	h.initialize()
	c := h.client
	c.setAutoAck(false)
	sess := h.startSession()
	stalled := h.exec(sess, "yes")
	flowing := h.exec(sess, "yes")
	procs := h.be.Bottles()[0].Procs()
	stalledProc := procs[0]

	// The exec nobody acks stops at exactly the window...
	c.waitFor("a full window of output", func() bool { return len(c.output[stalled]) >= window })
	// ...while the other keeps going as it is acked, several windows' worth.
	acked := 0
	for acked < 8*window {
		c.waitFor("more output from the acked exec", func() bool { return len(c.output[flowing]) > acked })
		n := len(c.outputOf(flowing))
		c.notify(rpc.MethodAck, rpc.AckParams{Exec: flowing, Bytes: int64(n - acked)})
		acked = n
	}
	if got := len(c.outputOf(stalled)); got != window {
		t.Errorf("unacked exec sent %d bytes, want exactly the window %d", got, window)
	}
	if got := stalledProc.read.Load(); got != window {
		t.Errorf("server read %d bytes of the unacked exec's output, want it to stop reading at %d", got, window)
	}
	var list rpc.ListResult
	c.mustCall(rpc.MethodList, nil, &list)
	if e := list.Sessions[0].Execs[0]; e.Sent != window || e.Acked != 0 {
		t.Errorf("list shows %+v, want sent = window, acked = 0", e)
	}

	// Acks resume it.
	c.notify(rpc.MethodAck, rpc.AckParams{Exec: stalled, Bytes: window})
	c.waitFor("output after the ack", func() bool { return len(c.output[stalled]) > window })

	// Overacking does not widen the window: acking a huge count
	// releases at most what was sent.
	c.notify(rpc.MethodAck, rpc.AckParams{Exec: stalled, Bytes: 1 << 40})
	c.mustCall(rpc.MethodKill, rpc.KillParams{Exec: stalled}, nil)
	c.waitExit(stalled)
	if sent, read := len(c.outputOf(stalled)), stalledProc.read.Load(); int64(sent) != read || sent > 3*window {
		t.Errorf("after an over-ack: read %d, sent %d; want read = sent <= 3 windows", read, sent)
	}
}

// Replies overtake queued output. Eight execs flood output to a client
// that acks everything, so up to eight windows of output are queued in
// the server; were replies queued behind it, each would come after about
// a hundred output notifications.
func TestRepliesAreNotStuckBehindOutput(t *testing.T) {
	const execs = 8
	h := newHarness(t, rpc.Options{})
	h.initialize()
	c := h.client
	sess := h.startSession()
	var ids []string
	for range execs {
		ids = append(ids, h.exec(sess, "yes"))
	}
	c.waitFor("a flood of output from every exec", func() bool {
		for _, id := range ids {
			if len(c.output[id]) < 2*session.DefaultWindow {
				return false
			}
		}
		return true
	})

	// A window of output can be sent while the request travels (the acks
	// before it in the pipe reopen windows), and as much again may be in
	// the pipe back: the bound is two windows of one exec, not eight.
	const limit = 2 * session.DefaultWindow / session.DefaultChunk
	for range 20 {
		before := len(c.messages())
		resp := c.call(rpc.MethodList, nil)
		between := 0
		for _, m := range c.messages()[before:] {
			if m.isResponse() && string(m.ID) == string(resp.ID) {
				break
			}
			if m.Method == rpc.MethodOutput {
				between++
			}
		}
		if between > limit {
			t.Errorf("reply came after %d output notifications, want at most %d", between, limit)
		}
	}
}

func TestEgressRecordsArriveAsNotifications(t *testing.T) {
	auditDir := t.TempDir()
	h := newHarness(t, rpc.Options{AuditDir: auditDir})
	h.initialize()
	c := h.client
	sess := h.startSession()
	when := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	h.be.Bottles()[0].onEgress(egress.Record{
		Time: when, Session: sess, Event: "decision", Method: "CONNECT",
		Host: "api.anthropic.com", Port: 443, Decision: "allow", Rule: "api.anthropic.com",
	})
	h.be.Bottles()[0].onEgress(egress.Record{
		Time: when, Session: sess, Event: "close", Method: "CONNECT",
		Host: "api.anthropic.com", Port: 443, Decision: "allow", BytesUp: 10, BytesDown: 20,
	})

	var got []rpc.EgressParams
	c.waitFor("two egress notifications", func() bool {
		got = got[:0]
		for _, m := range c.log {
			if m.Method == rpc.MethodEgress {
				var p rpc.EgressParams
				if err := json.Unmarshal(m.Params, &p); err != nil {
					t.Errorf("bad bottle/egress %s: %v", m.Params, err)
				}
				got = append(got, p)
			}
		}
		return len(got) == 2
	})
	want := rpc.EgressRecord{Time: when, Event: "decision", Method: "CONNECT", Host: "api.anthropic.com", Port: 443, Decision: "allow", Rule: "api.anthropic.com"}
	if got[0].Session != sess || got[0].Record != want {
		t.Errorf("egress = %+v, want session %s and %+v", got[0], sess, want)
	}
	if got[1].Record.BytesUp != 10 || got[1].Record.BytesDown != 20 {
		t.Errorf("close record = %+v, want its byte counts", got[1].Record)
	}
	// And the server keeps them in the session's audit file.
	data, err := os.ReadFile(auditlog.Path(auditDir, sess))
	if err != nil {
		t.Fatalf("the session's audit file: %v", err)
	}
	if n := strings.Count(string(data), `"session":"`+sess+`"`); n != 2 {
		t.Errorf("the audit file holds %d records of the session, want 2:\n%s", n, data)
	}
}

// BenchmarkOutputThroughput measures terminal output through the server:
// a process that writes without pause, and a lean client that reads each
// bottle/output, acks it and counts its bytes, over in-memory pipes.
func BenchmarkOutputThroughput(b *testing.B) {
	be := &fakeBackend{}
	serverIn, clientOut := io.Pipe()
	clientIn, serverOut := io.Pipe()
	srv := rpc.NewServer(be, rpc.Options{Logger: testLogger(b)})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), serverIn, serverOut) }()
	b.Cleanup(func() {
		clientOut.Close()
		<-done
		clientIn.Close()
	})
	c := newFakeClient(b, io.MultiReader(), clientOut) // writes only: this benchmark reads for itself
	br := bufio.NewReaderSize(clientIn, 64<<10)
	next := func() message {
		body, err := readFrame(br)
		if err != nil {
			b.Fatal(err)
		}
		var m message
		if bytes.Contains(body[:min(len(body), 64)], []byte(rpc.MethodOutput)) {
			return message{Method: rpc.MethodOutput, Params: body}
		}
		if err := json.Unmarshal(body, &m); err != nil {
			b.Fatal(err)
		}
		return m
	}
	call := func(method string, params, result any) {
		c.send(method, params)
		for {
			m := next()
			if m.isResponse() {
				if m.Error != nil {
					b.Fatalf("%s: %+v", method, m.Error)
				}
				if result != nil {
					json.Unmarshal(m.Result, result)
				}
				return
			}
		}
	}
	call(rpc.MethodInitialize, nil, nil)
	var st rpc.StartResult
	call(rpc.MethodStart, rpc.StartParams{Agent: "claude"}, &st)
	var ex rpc.ExecResult
	call(rpc.MethodExec, rpc.ExecParams{Session: st.Session, Argv: []string{"yes"}}, &ex)
	prefix := []byte(`"data":"`)

	b.SetBytes(1 << 20)
	b.ResetTimer()
	for range b.N {
		for got := 0; got < 1<<20; {
			m := next()
			if m.Method != rpc.MethodOutput {
				continue
			}
			i := bytes.Index(m.Params, prefix)
			data := m.Params[i+len(prefix):]
			n, err := base64.StdEncoding.Decode(data, data[:bytes.IndexByte(data, '"')])
			if err != nil {
				b.Fatal(err)
			}
			got += n
			c.notify(rpc.MethodAck, rpc.AckParams{Exec: ex.Exec, Bytes: int64(n)})
		}
	}
}

func TestAgentsListsTheManifestsAgents(t *testing.T) {
	dir := t.TempDir()
	own := filepath.Join(dir, "bottle.yaml")
	if err := os.WriteFile(own, []byte("agents:\n  b: {bottle: x, command: [bash], args: [-l]}\n  a: {bottle: x}\nbottles:\n  x: {image: img, egress: {allow: [h.test]}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, rpc.Options{})
	h.initialize()

	var res rpc.AgentsResult
	h.client.mustCall(rpc.MethodAgents, rpc.AgentsParams{}, &res)
	if res.Manifest != "(built-in)" || len(res.Agents) != 1 || res.Agents[0].Name != "claude" {
		t.Errorf("built-in agents = %+v", res)
	}
	h.client.mustCall(rpc.MethodAgents, rpc.AgentsParams{Manifest: "bottle.yaml", Cwd: dir}, &res)
	want := []rpc.AgentInfo{
		{Name: "a", Bottle: "x", Command: []string{"claude"}, Allow: []string{"h.test"}},
		{Name: "b", Bottle: "x", Command: []string{"bash", "-l"}, Allow: []string{"h.test"}},
	}
	if !slices.EqualFunc(res.Agents, want, func(a, b rpc.AgentInfo) bool {
		return a.Name == b.Name && a.Bottle == b.Bottle && slices.Equal(a.Command, b.Command) && slices.Equal(a.Allow, b.Allow)
	}) {
		t.Errorf("agents = %+v, want %+v", res.Agents, want)
	}
	checkError(t, "missing manifest", h.client.callErr(rpc.MethodAgents, rpc.AgentsParams{Manifest: filepath.Join(dir, "none.yaml")}), -32102, rpc.KindManifestUnreadable)
	checkError(t, "relative cwd", h.client.callErr(rpc.MethodAgents, rpc.AgentsParams{Cwd: "rel"}), -32602, rpc.KindInvalidParams)
}
