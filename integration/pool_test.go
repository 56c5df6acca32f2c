package integration

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/rpc"
)

// A daemon killed with SIGKILL leaves its warm pool's bottles, made ahead
// of time and never taken, and `bottle-rpc gc` removes them like any
// bottle of a dead server.
func TestDaemonKilledLeavesPooledBottlesThatGCRemoves(t *testing.T) {
	d := startDaemon(t, "--pool", "1")
	c := newClient(t, d)
	manifest := writeManifest(t, "runc")
	// The preflight names the kind of bottle to the pool, which makes one.
	waitFor(t, "a bottle made ahead of time", 3*time.Minute, func() bool {
		var plan rpc.PlanResult
		c.call(rpc.MethodPlan, rpc.PlanParams{Agent: "sh", Manifest: manifest}, &plan)
		return plan.Warm
	})
	pid := d.cmd.Process.Pid
	pooled := resourcesWhere(t, func(r dockerbottle.Resource) bool {
		return r.OwnerPID == strconv.Itoa(pid) && strings.HasPrefix(r.Session, "pool-")
	})
	var containers int
	for _, r := range pooled {
		if r.Kind == "container" {
			containers++
		}
	}
	if containers < 2 {
		t.Fatalf("the pooled bottle's resources: %+v; want its agent and sidecar", pooled)
	}
	d.kill()
	c.waitExited(time.Minute, "its daemon was killed")
	settledCount(t, pid)
	out, err := serverCmd([]string{"gc"}).CombinedOutput()
	if err != nil {
		t.Fatalf("bottle-rpc gc: %v\n%s", err, out)
	}
	if left := ownedBy(t, pid); len(left) > 0 {
		t.Errorf("gc left the killed daemon's pooled bottle: %+v\n%s", left, out)
	}
}
