package integration

import (
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/rpc"
)

// ownedBy lists what the server with pid made and is still on the engine.
func ownedBy(t *testing.T, pid int) []dockerbottle.Resource {
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
		if r.OwnerPID == strconv.Itoa(pid) {
			out = append(out, r)
		}
	}
	return out
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
			// A create the daemon was serving when the server died still
			// completes; give it a moment, as any later clean-up would.
			time.Sleep(time.Second)
			t.Logf("killed at %s with %d resources on the engine", step, len(ownedBy(t, pid)))
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

