package dockerbottle_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/internal/testwait"
)

// poolManifest is one agent "sh" on the base image whose bottle keeps
// pool bottles made ahead of time, whatever the engine's default.
func poolManifest(t testing.TB, runtime string, pool int) backend.StartSpec {
	t.Helper()
	m := parseManifest(t, fmt.Sprintf(`
agents:
  sh: {bottle: plain, command: [bash], prompt: "be careful", env: {AGENT_VAR: a}}
bottles:
  plain: {image: %s, runtime: %s, pool: %d, env: {BOTTLE_VAR: b}, egress: {allow: [upstream.test]}}
`, baseImage, runtime, pool), nil)
	return backend.StartSpec{Manifest: m, Agent: "sh"}
}

// drainAfter empties the pool when the test ends, so that it leaves
// nothing behind.
func drainAfter(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := engine.DrainPool(ctx); err != nil {
			t.Errorf("draining the pool: %v", err)
		}
	})
}

// waitWarm waits until a plan of spec says a start would be warm.
func waitWarm(t *testing.T, spec backend.StartSpec) {
	t.Helper()
	testwait.UntilChanged(t, "a bottle made ahead of time", 3*time.Minute, func() (bool, <-chan struct{}) {
		_, changed := engine.PoolReady()
		p, err := engine.Plan(context.Background(), spec)
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		return p.Warm, changed
	})
}

func TestWarmStartsTakeDifferentBottles(t *testing.T) {
	needEngine(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			drainAfter(t)
			spec := poolManifest(t, rt, 1)
			waitWarm(t, spec)
			first := startBottle(t, spec)
			waitWarm(t, spec)
			second := startBottle(t, spec)
			a, b := first.Info(), second.Info()
			if !a.Warm || !b.Warm {
				t.Fatalf("warm = %v, %v; want both warm", a.Warm, b.Warm)
			}
			if a.ContainerID == b.ContainerID || a.Session == b.Session {
				t.Fatalf("two warm starts got one bottle: %+v", a)
			}
			// Other tests' bottles may hold bottle-sh: the names are the
			// engine's.
			if !strings.HasPrefix(a.Container, "bottle-sh") || !strings.HasPrefix(b.Container, "bottle-sh-") {
				t.Errorf("names %s, %s; want bottle-sh and bottle-sh-N as cold starts get", a.Container, b.Container)
			}
			// What a cold start puts in the container's configuration, each
			// exec gets; the session is the start's, not the pool's.
			out := mustRun(t, second, "sh", "-c", `echo "$BOTTLE_SESSION $AGENT_VAR $BOTTLE_VAR $HTTPS_PROXY"; cat ~/.claude-bottle-prompt.txt 2>/dev/null; id -u`)
			if !strings.HasPrefix(out, b.Session+" a b http://"+b.ProxyAddr) {
				t.Errorf("exec env: %q", out)
			}
			c := inspect(t, b.ContainerID)
			if !strings.HasPrefix(c.Config.Labels[dockerbottle.LabelSession], "pool-") || c.Config.Labels[dockerbottle.LabelPool] == "" {
				t.Errorf("labels %v: want the pool id and key", c.Config.Labels)
			}
			for _, e := range c.Config.Env {
				if strings.Contains(e, "AGENT_VAR") || strings.Contains(e, "BOTTLE_VAR") {
					t.Errorf("the pooled container's configuration holds %s: it was made for nobody", e)
				}
			}
			if rt == dockerbottle.RuntimeRunc && (c.HostConfig.Runtime != "runc") || rt == dockerbottle.RuntimeRunsc && c.HostConfig.Runtime != "runsc" {
				t.Errorf("runtime %s, want %s", c.HostConfig.Runtime, rt)
			}
		})
	}
}

func TestPooledSidecarRefusesEverythingUntilConfigured(t *testing.T) {
	needEngine(t)
	drainAfter(t)
	spec := poolManifest(t, dockerbottle.RuntimeRunc, 1)
	waitWarm(t, spec)
	pooled := engine.PooledForTest()
	if len(pooled) != 1 {
		t.Fatalf("%d bottles in the pool, want 1", len(pooled))
	}
	bt := pooled[0]
	// upstream.test is on the allowlist the start will push: before it, the
	// proxy refuses it like anything else, before any lookup.
	for _, url := range []string{"http://upstream.test/", "https://upstream.test/"} {
		out, _ := run(t, bt, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", url)
		if !strings.Contains(out, "403") {
			t.Errorf("%s through a pooled proxy: %q, want 403", url, out)
		}
	}
	c := inspect(t, bt.AgentID())
	if c.Config.Labels[dockerbottle.LabelPool] == "" || !strings.HasPrefix(c.Config.Labels[dockerbottle.LabelSession], "pool-") {
		t.Errorf("pooled agent labels %v", c.Config.Labels)
	}
}

func TestPlanSaysWarmOnlyWhenThePoolHasOne(t *testing.T) {
	needEngine(t)
	drainAfter(t)
	off := poolManifest(t, dockerbottle.RuntimeRunc, 0)
	on := poolManifest(t, dockerbottle.RuntimeRunc, 1)
	waitWarm(t, on)
	p, err := engine.Plan(context.Background(), off)
	if err != nil {
		t.Fatal(err)
	}
	if p.Warm {
		t.Error("plan of a bottle with pool: 0 says warm")
	}
	if bt := startBottle(t, off); bt.Info().Warm {
		t.Error("a bottle with pool: 0 started warm")
	}
}
