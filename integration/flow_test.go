package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/rpc"
)

func TestFullFlowOverStdio(t *testing.T) {
	e := newEditor(t)
	manifest := writeManifest(t, "runsc")

	var plan rpc.PlanResult
	e.call(rpc.MethodPlan, rpc.PlanParams{Agent: "sh", Manifest: manifest}, &plan)
	if plan.RuntimeLabel != "runsc (gVisor)" || plan.Image != "bottle/base:bookworm" || len(plan.Allow) != 1 {
		t.Errorf("plan = %+v", plan)
	}

	started := e.start(rpc.StartParams{Agent: "sh", Manifest: manifest, WorkDoneToken: json.RawMessage(`"tok-1"`)})
	if started.Runtime != "runsc" || started.Container == "" {
		t.Errorf("start result = %+v", started)
	}
	// Progress runs begin, reports, end, all before the reply.
	e.mu.Lock()
	kinds := []string{}
	for _, p := range e.progress {
		if string(p.Token) == `"tok-1"` {
			kinds = append(kinds, p.Value.Kind)
		}
	}
	e.mu.Unlock()
	if len(kinds) < 3 || kinds[0] != "begin" || kinds[len(kinds)-1] != "end" {
		t.Errorf("progress kinds before the start reply = %v, want begin, report..., end", kinds)
	}

	id := e.exec(started.Session, true, "bash", "--norc", "-i")
	e.input(id, "stty size; echo sum=$((40+2))\n")
	if out := e.waitOutput(id, "sum=42"); !strings.Contains(out, "30 100") {
		t.Errorf("initial size not 30x100: %q", out)
	}
	if err := e.conn.Notify(t.Context(), rpc.MethodResize, rpc.ResizeParams{Exec: id, Cols: 132, Rows: 43}); err != nil {
		t.Fatal(err)
	}
	e.input(id, "stty size\n")
	e.waitOutput(id, "43 132")

	host := filepath.Join(t.TempDir(), "hello.txt")
	os.WriteFile(host, []byte("hello bottle"), 0o644)
	var cp rpc.CpResult
	e.call(rpc.MethodCp, rpc.CpParams{Session: started.Session, HostPath: host, ContainerPath: "/home/node/workspace/hello.txt"}, &cp)
	if cp.Bytes != 12 {
		t.Errorf("cp copied %d bytes, want 12", cp.Bytes)
	}
	e.input(id, "stat -c '%U %s' hello.txt; exit 4\n")
	if out := e.waitOutput(id, "node 12"); out == "" {
		t.Error("copied file not owned by node")
	}
	if ex := e.waitExit(id); ex.Code != 4 {
		t.Errorf("exit = %+v, want code 4", ex)
	}
	// No output of an exec may follow its exit.
	e.mu.Lock()
	sawExit := false
	for _, n := range e.notes {
		if n.method == rpc.MethodExecExit && strings.Contains(string(n.params), id) {
			sawExit = true
		}
		if sawExit && n.method == rpc.MethodOutput && strings.Contains(string(n.params), id) {
			t.Error("bottle/output after bottle/exit")
		}
	}
	e.mu.Unlock()

	var list rpc.ListResult
	e.call(rpc.MethodList, rpc.ListParams{}, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].State != "ready" || len(list.Sessions[0].Execs) != 1 {
		t.Errorf("list = %+v", list)
	}

	e.call(rpc.MethodClose, rpc.CloseParams{Session: started.Session}, nil)
	e.call(rpc.MethodClose, rpc.CloseParams{Session: started.Session}, nil)
	assertGone(t, started.Session)

	e.call(rpc.MethodShutdown, nil, nil)
	e.conn.Notify(t.Context(), rpc.MethodExit, nil)
	e.waitExited(time.Minute, "exit")
	if e.exit != nil {
		t.Errorf("bottle-rpc exited with %v after shutdown and exit, want 0", e.exit)
	}
}

func TestThreeBottlesInParallel(t *testing.T) {
	e := newEditor(t)
	manifest := writeManifest(t, "runc")
	results := make(chan rpc.StartResult, 3)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			var res rpc.StartResult
			if err := e.try(rpc.MethodStart, rpc.StartParams{Agent: "sh", Manifest: manifest}, &res); err != nil {
				errs <- err
				return
			}
			results <- res
		}()
	}
	var sessions []string
	for range 3 {
		select {
		case err := <-errs:
			t.Fatalf("start: %v", err)
		case res := <-results:
			sessions = append(sessions, res.Session)
		}
	}
	ids := map[string]string{}
	for _, s := range sessions {
		ids[s] = e.exec(s, false, "sh", "-c", "echo session $BOTTLE_SESSION")
	}
	for s, id := range ids {
		if out := e.waitOutput(id, "session "+s); !strings.Contains(out, s) {
			t.Errorf("exec in %s printed %q", s, out)
		}
	}
	for _, s := range sessions {
		e.call(rpc.MethodClose, rpc.CloseParams{Session: s}, nil)
		assertGone(t, s)
	}
}

func TestCancellingAStartTearsItDown(t *testing.T) {
	e := newEditor(t)
	manifest := writeManifest(t, "runc")
	done := make(chan error, 1)
	id := e.calls.Load() + 1
	go func() {
		done <- e.try(rpc.MethodStart, rpc.StartParams{Agent: "sh", Manifest: manifest, WorkDoneToken: json.RawMessage(`7`)}, nil)
	}()
	// Cancel once the start is under way (its first progress report).
	e.waitUntil("start progress", time.Minute, func() bool { return len(e.progress) > 1 })
	if err := e.conn.Notify(t.Context(), rpc.MethodCancelRequest, map[string]any{"id": id}); err != nil {
		t.Fatal(err)
	}
	err := <-done
	wantCode(t, err, rpc.CodeRequestCancelled)
	var list rpc.ListResult
	e.call(rpc.MethodList, rpc.ListParams{}, &list)
	for _, s := range list.Sessions {
		if s.State == "ready" {
			t.Errorf("a cancelled start left session %s ready", s.Session)
		}
		assertGone(t, s.Session)
	}
}

func TestClientDisconnectMidExecTearsEverythingDown(t *testing.T) {
	e := newEditor(t)
	manifest := writeManifest(t, "runc")
	started := e.start(rpc.StartParams{Agent: "sh", Manifest: manifest})
	id := e.exec(started.Session, true, "sh", "-c", "echo running; sleep 600")
	e.waitOutput(id, "running")
	e.stdin.Close()
	e.waitExited(2*time.Minute, "its input closed")
	assertGone(t, started.Session)
}

func TestKillEndsTheProcessNotTheBottle(t *testing.T) {
	e := newEditor(t)
	started := e.start(rpc.StartParams{Agent: "sh", Manifest: writeManifest(t, "runc")})
	for _, tty := range []bool{true, false} {
		id := e.exec(started.Session, tty, "sh", "-c", "sleep 600 & echo started; wait")
		e.waitOutput(id, "started")
		e.call(rpc.MethodKill, rpc.KillParams{Exec: id}, nil)
		e.waitExit(id)
		// The exit may come before the kill is done on a slow engine (after
		// session.KillGrace), so the check gives it a few seconds.
		check := e.exec(started.Session, false, "sh", "-c",
			"for i in $(seq 50); do pgrep -f 'slee[p] 600' >/dev/null || { echo none-left; exit; }; sleep 0.2; done; pgrep -af 'slee[p] 600'")
		if out := e.waitOutput(check, "\n"); !strings.Contains(out, "none-left") {
			t.Errorf("tty=%v: processes left 10 s after kill: %q", tty, out)
		}
		e.waitExit(check)
	}
}

func TestQuickCommandInATerminalRuns(t *testing.T) {
	e := newEditor(t)
	started := e.start(rpc.StartParams{Agent: "sh", Manifest: writeManifest(t, "runc")})
	id := e.exec(started.Session, true, "echo", "quick")
	if ex := e.waitExit(id); ex.Code != 0 || ex.Error != "" {
		t.Errorf("a command that ends at once: exit %+v", ex)
	}
	if out := e.output(id); !strings.Contains(out, "quick") {
		t.Errorf("its output %q was lost", out)
	}
}

// TestClientThatVanishesMidOutputLeavesNothing: the editor dies with the
// server writing to it; the server must not die of SIGPIPE before it tore
// its bottles down.
func TestClientThatVanishesMidOutputLeavesNothing(t *testing.T) {
	e := newEditor(t)
	started := e.start(rpc.StartParams{Agent: "sh", Manifest: writeManifest(t, "runc")})
	id := e.exec(started.Session, true, "yes", "flood")
	e.waitOutput(id, "flood")
	e.conn.Close() // both pipes: the server's next write fails
	e.waitExited(2*time.Minute, "its client vanished")
	if ws, ok := e.cmd.ProcessState.Sys().(interface{ Signaled() bool }); ok && ws.Signaled() {
		t.Errorf("bottle-rpc was killed by a signal (%v) instead of exiting", e.cmd.ProcessState)
	}
	assertGone(t, started.Session)
}
