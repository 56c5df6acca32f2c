package integration

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.lsp.dev/jsonrpc2"

	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/rpc"
)

// ownedBy lists what the server with pid made and is still on the engine.
func ownedBy(t *testing.T, pid int) []dockerbottle.Resource {
	t.Helper()
	return resourcesWhere(t, func(r dockerbottle.Resource) bool { return r.OwnerPID == strconv.Itoa(pid) })
}

// settledCount waits until the resources the dead server pid owns stop
// changing and returns how many there are: a create the daemon was serving
// when the server died still completes, on a busy engine after a while, and
// a clean-up that ran before it would miss it.
func settledCount(t *testing.T, pid int) int {
	t.Helper()
	n, same := len(ownedBy(t, pid)), 0
	for deadline := time.Now().Add(30 * time.Second); same < 4 && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		if m := len(ownedBy(t, pid)); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}

// TestServerKilledAtEachStepLeavesNothingAfterGC kills the server with
// SIGKILL as each step of a start begins (and mid-exec), then cleans up
// the way a user would: `bottle-rpc gc`, or simply starting a new server.
func TestServerKilledAtEachStepLeavesNothingAfterGC(t *testing.T) {
	manifest := writeManifest(t, "runc")
	steps := []string{"runtime", "image", "networks", "containers", "start", "ready", "mid-exec"}
	for i, step := range steps {
		t.Run(step, func(t *testing.T) {
			e := newEditor(t)
			pid := e.cmd.Process.Pid
			kill := func() {
				syscall.Kill(pid, syscall.SIGKILL)
				<-e.waited
			}
			if step == "mid-exec" {
				started := e.start(rpc.StartParams{Agent: "sh", Manifest: manifest})
				id := e.exec(started.Session, true, "sh", "-c", "echo running; sleep 600")
				e.waitOutput(id, "running")
				kill()
			} else {
				go e.try(rpc.MethodStart, rpc.StartParams{Agent: "sh", Manifest: manifest, WorkDoneToken: json.RawMessage(`"s"`)}, nil)
				e.waitUntil("step "+step, 2*time.Minute, func() bool {
					for _, p := range e.progress {
						if p.Value.Kind == "report" && p.Value.Step == step {
							return true
						}
					}
					return false
				})
				kill()
			}
			t.Logf("killed at %s with %d resources on the engine", step, settledCount(t, pid))
			if i%2 == 0 {
				if out, err := exec.Command(binary, "gc").CombinedOutput(); err != nil {
					t.Fatalf("bottle-rpc gc: %v\n%s", err, out)
				}
			} else {
				newEditor(t) // a new server reaps orphans as it starts
			}
			if left := ownedBy(t, pid); len(left) > 0 {
				t.Errorf("after killing the server at %s and cleaning up, left: %+v", step, left)
			}
		})
	}
}

func TestClientDisconnectMidStartTearsItDown(t *testing.T) {
	e := newEditor(t)
	pid := e.cmd.Process.Pid
	go e.try(rpc.MethodStart, rpc.StartParams{Agent: "sh", Manifest: writeManifest(t, "runc"), WorkDoneToken: json.RawMessage(`"s"`)}, nil)
	e.waitUntil("the containers step", 2*time.Minute, func() bool {
		for _, p := range e.progress {
			if p.Value.Step == "containers" {
				return true
			}
		}
		return false
	})
	e.stdin.Close()
	e.waitExited(2*time.Minute, "its client went away")
	if left := ownedBy(t, pid); len(left) > 0 {
		t.Errorf("a start cut off by the client's disconnect left: %+v", left)
	}
}

// TestDaemonRestartFailsTheSessionAndCloseStillCleansUp restarts the real
// Docker daemon under a live session. It must not run beside other tests
// (scripts/test.sh runs packages one at a time).
func TestDaemonRestartFailsTheSessionAndCloseStillCleansUp(t *testing.T) {
	e := newEditor(t)
	started := e.start(rpc.StartParams{Agent: "sh", Manifest: writeManifest(t, "runc")})
	id := e.exec(started.Session, true, "sh", "-c", "echo running; sleep 600")
	e.waitOutput(id, "running")

	stopDockerd(t)
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			startDockerd(t)
		}
	})
	if ex := e.waitExit(id); ex.Error == "" && ex.Code == 0 {
		t.Errorf("the exec survived the daemon stopping: %+v", ex)
	}
	// The engine is down: the exec says so, as -32100 when it is the one
	// that found out, or -32107 naming the cause when the exec's pump
	// already marked the session failed.
	err := e.try(rpc.MethodExec, rpc.ExecParams{Session: started.Session, Argv: []string{"true"}}, nil)
	var rpcErr *jsonrpc2.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != rpc.CodeEngineUnavailable && rpcErr.Code != rpc.CodeSessionNotReady {
		t.Fatalf("exec with the engine down: %v, want error %d or %d", err, rpc.CodeEngineUnavailable, rpc.CodeSessionNotReady)
	}
	if !strings.Contains(rpcErr.Message, "daemon") && !strings.Contains(rpcErr.Message, "Docker") {
		t.Errorf("engine-down error does not say what is wrong: %q", rpcErr.Message)
	}

	startDockerd(t)
	restarted = true
	var list rpc.ListResult
	e.call(rpc.MethodList, rpc.ListParams{}, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].State != "failed" {
		t.Errorf("after the daemon went away the session is %+v, want failed", list.Sessions)
	}
	err = e.try(rpc.MethodExec, rpc.ExecParams{Session: started.Session, Argv: []string{"true"}}, nil)
	wantCode(t, err, rpc.CodeSessionNotReady)

	e.call(rpc.MethodClose, rpc.CloseParams{Session: started.Session}, nil)
	assertGone(t, started.Session)
}

func stopDockerd(t *testing.T) {
	t.Helper()
	if err := exec.Command("sh", "-c", `
if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then systemctl stop docker docker.socket; exit; fi
pid=$(cat /var/run/docker.pid) && kill -TERM "$pid" && while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done`).Run(); err != nil {
		t.Fatalf("stopping dockerd: %v", err)
	}
}

// startDockerd starts the daemon the way set-up does.
func startDockerd(t *testing.T) {
	t.Helper()
	out, err := exec.Command("../scripts/setup.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("restarting dockerd with scripts/setup.sh: %v\n%s", err, out)
	}
}
