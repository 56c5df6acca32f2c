package dockerbottle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
)

// These tests run the adapter's own logic on a fake engine: they need no
// Docker engine (go test -run Unit ./dockerbottle/ passes without one).

const fakeSession = "s1"

// startOnFake starts agent sh of fakeManifest on m, noting each progress
// step in m's log.
func startOnFake(t *testing.T, m *memEngine, runtime string, ctx context.Context, progress backend.Progress) (*Engine, backend.Bottle, error) {
	t.Helper()
	e := fakeEngine(t, m.api)
	t.Cleanup(m.close)
	spec := backend.StartSpec{Manifest: fakeManifest(t, runtime), Agent: "sh", Session: fakeSession}
	bt, err := e.Start(ctx, spec, func(st backend.Step) {
		m.note("step " + st.Name)
		if progress != nil {
			progress(st)
		}
	})
	return e, bt, err
}

// inOrder fails unless each of want is in log after the one before it.
func inOrder(t *testing.T, log []string, want ...string) {
	t.Helper()
	at := -1
	for _, w := range want {
		i := slices.Index(log, w)
		if i < 0 {
			t.Errorf("no %q in the calls %q", w, log)
			return
		}
		if i < at {
			t.Errorf("%q came before %q; the calls: %q", w, want[slices.Index(want, w)-1], log)
			return
		}
		at = i
	}
}

func TestUnitStartReportsItsNamedStepsInOrder(t *testing.T) {
	want := []backend.Step{
		{Name: "runtime", Message: "probing the container runtime", Done: 0, Total: 6},
		{Name: "image", Message: "preparing images and networks", Done: 1, Total: 6},
		{Name: "networks", Message: "networks ready", Done: 2, Total: 6},
		{Name: "containers", Message: "creating the agent and sidecar containers", Done: 3, Total: 6},
		{Name: "start", Message: "provisioning the agent and starting it and the egress proxy", Done: 4, Total: 6},
		{Name: "ready", Message: "bottle ready", Done: 5, Total: 6},
	}
	m := newMemEngine()
	var got []backend.Step
	_, bt, err := startOnFake(t, m, RuntimeRunsc, context.Background(), func(st backend.Step) { got = append(got, st) })
	if err != nil {
		t.Fatal(err)
	}
	defer bt.Close(context.Background())
	if !slices.Equal(got, want) {
		t.Errorf("progress:\n got %+v\nwant %+v", got, want)
	}
}

func TestUnitStartMakesEachThingAfterWhatItNeeds(t *testing.T) {
	const sidecar = "bottle-" + fakeSession + "-egress-proxy"
	for _, rt := range []string{RuntimeRunc, RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			m := newMemEngine()
			_, bt, err := startOnFake(t, m, rt, context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			log := m.calls()
			if rt == RuntimeRunsc {
				inOrder(t, log, "step runtime", "Info", "step image")
			}
			for _, made := range []string{"ImageInspect test/agent:1", "ImageInspect bottle/egress-proxy:fake", "NetworkCreate bottle-s1-internal", "NetworkCreate " + EgressNetwork} {
				inOrder(t, log, "step image", made, "step networks", "step containers")
			}
			inOrder(t, log, "step containers", "ContainerCreate "+sidecar, "NetworkConnect "+sidecar, "step start",
				"ContainerAttach "+sidecar, "ContainerStart "+sidecar, "step ready")
			inOrder(t, log, "step containers", "ContainerCreate bottle-sh", "step start",
				"CopyToContainer bottle-sh", "ContainerStart bottle-sh", "step ready")
			if rt == RuntimeRunc {
				inOrder(t, log, "ContainerCreate bottle-sh", "ContainerCreate dns-guard", "step start",
					"ContainerStart bottle-sh", "ContainerAttach dns-guard", "ContainerStart dns-guard", "step ready")
			} else if slices.Contains(log, "ContainerCreate dns-guard") {
				t.Errorf("a DNS guard under %s: %q", rt, log)
			}
			info := bt.Info()
			if info.Container != "bottle-sh" || info.ContainerID != "id-bottle-sh" || info.Runtime != rt || info.ProxyAddr == "" {
				t.Errorf("info %+v", info)
			}
			if err := bt.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if left := m.left(); len(left) > 0 {
				t.Errorf("Close left %v", left)
			}
		})
	}
}

// A start that fails at any call, or is cancelled at any step, removes
// every container and network it made, containers first (the reverse of
// their making: they sit on the networks).
func TestUnitAFailedStartRemovesEverythingItMadeInReverse(t *testing.T) {
	const sidecar = "bottle-" + fakeSession + "-egress-proxy"
	failAt := []string{
		"ImageInspect test/agent:1", "NetworkCreate bottle-s1-internal", "NetworkCreate " + EgressNetwork,
		"ContainerCreate " + sidecar, "NetworkConnect " + sidecar, "ContainerCreate bottle-sh", "ContainerCreate dns-guard",
		"CopyToContainer bottle-sh", "ContainerStart bottle-sh", "ContainerAttach dns-guard", "ContainerStart dns-guard",
		"ContainerAttach " + sidecar, "ContainerStart " + sidecar,
	}
	check := func(t *testing.T, m *memEngine) {
		t.Helper()
		if left := m.left(); len(left) > 0 {
			t.Errorf("the failed start left %v", left)
		}
		log := m.calls()
		lastContainer, firstNetwork := -1, len(log)
		made, removed := map[string]bool{}, map[string]bool{}
		for i, c := range log {
			method, name, _ := strings.Cut(c, " ")
			switch method {
			case "ContainerCreate", "NetworkCreate":
				made[name] = true
			case "ContainerRemove":
				lastContainer, removed[name] = i, true
			case "NetworkRemove":
				firstNetwork, removed[name] = min(firstNetwork, i), true
			}
		}
		if lastContainer > firstNetwork {
			t.Errorf("a network was removed before a container: %q", log)
		}
		for name := range removed {
			if !made[name] {
				t.Errorf("removed %s, which the start did not make", name)
			}
		}
	}
	for _, at := range append(failAt, "Info") {
		t.Run("fail "+at, func(t *testing.T) {
			m := newMemEngine()
			m.failAt, m.failErr = at, errors.New("the engine said no")
			rt := RuntimeRunc // the DNS guard too
			if at == "Info" {
				rt = RuntimeRunsc // a pinned runc asks nothing
			}
			_, _, err := startOnFake(t, m, rt, context.Background(), nil)
			if err == nil || !strings.Contains(err.Error(), "the engine said no") {
				t.Fatalf("got %v, want the failure of %s", err, at)
			}
			check(t, m)
		})
	}
	for i := range numStartSteps {
		step := startSteps[i].name
		t.Run("cancel at "+step, func(t *testing.T) {
			m := newMemEngine()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, _, err := startOnFake(t, m, RuntimeRunc, ctx, func(st backend.Step) {
				if st.Name == step {
					cancel()
				}
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			check(t, m)
		})
	}
}

func TestUnitAnAgentNameTakenGetsTheNextFreeSuffix(t *testing.T) {
	taken := func(names ...string) *memEngine {
		m := newMemEngine()
		for _, n := range names {
			m.containers[n] = &container.Config{Labels: map[string]string{LabelSession: "other"}}
		}
		return m
	}
	t.Run("unpinned", func(t *testing.T) {
		m := taken("bottle-sh", "bottle-sh-2")
		_, bt, err := startOnFake(t, m, RuntimeRunsc, context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer bt.Close(context.Background())
		if got := bt.Info().Container; got != "bottle-sh-3" {
			t.Errorf("agent container %s, want bottle-sh-3", got)
		}
	})
	t.Run("all 99 taken", func(t *testing.T) {
		names := []string{"bottle-sh"}
		for i := 2; i <= 99; i++ {
			names = append(names, fmt.Sprintf("bottle-sh-%d", i))
		}
		m := taken(names...)
		_, _, err := startOnFake(t, m, RuntimeRunsc, context.Background(), nil)
		if !errors.Is(err, backend.ErrNameTaken) || !strings.Contains(err.Error(), "bottle-sh-99") {
			t.Fatalf("got %v, want ErrNameTaken naming bottle-sh-99", err)
		}
	})
	t.Run("pinned", func(t *testing.T) {
		m := taken("mine")
		e := fakeEngine(t, m.api)
		t.Cleanup(m.close)
		_, err := e.Start(context.Background(), backend.StartSpec{Manifest: fakeManifest(t, RuntimeRunsc), Agent: "sh", Session: fakeSession, ContainerName: "mine"}, nil)
		if !errors.Is(err, backend.ErrNameTaken) {
			t.Fatalf("got %v, want ErrNameTaken", err)
		}
		if n := strings.Count(strings.Join(m.calls(), "\n"), "ContainerCreate mine"); n != 1 {
			t.Errorf("a pinned name was tried %d times, want once", n)
		}
	})
}

func TestUnitRemovingAContainerWaitsForARemovalUnderWay(t *testing.T) {
	inProgress := fmt.Errorf("removal of container abc is already in progress: %w", cerrdefs.ErrConflict)
	tests := []struct {
		name    string
		answers []error // the engine's answers, in turn; the last repeats
		cancel  bool
		calls   int
		wantErr error
	}{
		{"removed", []error{nil}, false, 1, nil},
		{"already gone", []error{cerrdefs.ErrNotFound}, false, 1, nil},
		{"in progress, then gone", []error{inProgress, inProgress, cerrdefs.ErrNotFound}, false, 3, nil},
		{"in progress, then removed", []error{inProgress, nil}, false, 2, nil},
		{"another conflict", []error{fmt.Errorf("container is paused: %w", cerrdefs.ErrConflict)}, false, 1, cerrdefs.ErrConflict},
		{"in progress until given up", []error{inProgress}, true, 1, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			e := fakeEngine(t, &fakeAPI{containerRemoveFunc: func(context.Context, string, container.RemoveOptions) error {
				err := tt.answers[min(calls, len(tt.answers)-1)]
				calls++
				if tt.cancel {
					cancel()
				}
				return err
			}})
			err := e.removeContainer(ctx, "abc")
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
			if calls != tt.calls {
				t.Errorf("asked %d times, want %d", calls, tt.calls)
			}
		})
	}
}

func TestUnitOnlyALostContainerFailsTheBottle(t *testing.T) {
	connFailed := connectionFailed(t)
	running := container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{State: &container.State{Running: true}}}
	stopped := container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{State: &container.State{Running: false}}}
	callErr := fmt.Errorf("no such exec: %w", cerrdefs.ErrNotFound)
	tests := []struct {
		name     string
		err      error
		inspect  container.InspectResponse
		ierr     error
		cancel   bool
		want     error // errors.Is
		inspects int
	}{
		{"no error", nil, running, nil, false, nil, 0},
		{"a not-found while the container runs", callErr, running, nil, false, callErr, 1},
		{"the container is gone", callErr, running, cerrdefs.ErrNotFound, false, backend.ErrBottleGone, 1},
		{"the container stopped", callErr, stopped, nil, false, backend.ErrBottleGone, 1},
		{"no state", callErr, container.InspectResponse{}, nil, false, backend.ErrBottleGone, 1},
		{"the engine is down", connFailed, running, nil, false, backend.ErrEngineUnavailable, 0},
		{"the engine went down before the look", callErr, running, connFailed, false, backend.ErrEngineUnavailable, 1},
		{"the look failed otherwise", callErr, running, errors.New("busy"), false, callErr, 1},
		{"the call was given up", callErr, running, cerrdefs.ErrNotFound, true, context.Canceled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inspects := 0
			e := fakeEngine(t, &fakeAPI{containerInspectFunc: func(_ context.Context, id string) (container.InspectResponse, error) {
				inspects++
				if id != "agent-id" {
					t.Errorf("inspected %s, want the agent container", id)
				}
				return tt.inspect, tt.ierr
			}})
			bt := &Bottle{engine: e, agentID: "agent-id"}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			got := bt.lost(ctx, tt.err)
			if tt.want == nil && got != nil || !errors.Is(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if tt.want != backend.ErrBottleGone && errors.Is(got, backend.ErrBottleGone) {
				t.Errorf("%v says the bottle is gone", got)
			}
			if inspects != tt.inspects {
				t.Errorf("looked at the container %d times, want %d", inspects, tt.inspects)
			}
		})
	}
}

func TestUnitEngineErrTellsADownEngineFromABadRequest(t *testing.T) {
	down := engineErr(fmt.Errorf("creating: %w", connectionFailed(t)))
	if !errors.Is(down, backend.ErrEngineUnavailable) || !strings.Contains(down.Error(), "DOCKER_HOST") {
		t.Errorf("a connection failure gave %v, want ErrEngineUnavailable with advice", down)
	}
	if again := engineErr(down); again.Error() != down.Error() {
		t.Errorf("classified twice: %v", again)
	}
	bad := fmt.Errorf("invalid reference format: %w", cerrdefs.ErrInvalidArgument)
	if got := engineErr(bad); got != bad {
		t.Errorf("a bad request gave %v, want it unchanged", got)
	}
	if engineErr(nil) != nil {
		t.Error("nil is an error")
	}
}

// Records the sidecar writes reach OnEgress in order, as the proxy wrote
// them, while the bottle lives.
func TestUnitTheSidecarsRecordsAreHandedUp(t *testing.T) {
	m := newMemEngine()
	want := []string{"a.test", "b.test"}
	for _, h := range want {
		m.records = append(m.records, egress.Record{Session: fakeSession, Event: egress.EventDecision, Method: "CONNECT", Host: h, Port: 443, Decision: egress.DecisionAllow, Rule: h})
	}
	e := fakeEngine(t, m.api)
	t.Cleanup(m.close)
	var mu sync.Mutex
	var got []string
	spec := backend.StartSpec{Manifest: fakeManifest(t, RuntimeRunsc), Agent: "sh", Session: fakeSession, OnEgress: func(r egress.Record) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.Host)
	}}
	bt, err := e.Start(context.Background(), spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bt.Close(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("records for %q, want %q", got, want)
	}
}

// connectionFailed is the error the Engine API client gives when nothing
// listens where the engine should be.
func connectionFailed(t *testing.T) error {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+t.TempDir()+"/docker.sock"), client.WithVersion("1.41"))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	_, err = cli.Ping(context.Background())
	if !client.IsErrConnectionFailed(err) {
		t.Fatalf("a client of no engine got %v, want a connection failure", err)
	}
	return err
}

// A caller that does not answer questions gets a proxy that never asks,
// whatever the manifest says: nobody would answer.
func TestUnitTheProxyAsksOnlyACallerThatAnswers(t *testing.T) {
	m := newMemEngine()
	e := fakeEngine(t, m.api)
	t.Cleanup(m.close)
	bt, err := e.Start(context.Background(), backend.StartSpec{Manifest: fakeManifest(t, RuntimeRunsc), Agent: "sh", Session: fakeSession}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bt.Close(context.Background())
	m.mu.Lock()
	cfg := m.sidecarCfg
	m.mu.Unlock()
	if cfg.Ask || cfg.AskTimeout != "" || bt.Info().AskTimeout != 0 {
		t.Errorf("config ask = %v, %q, info %v; want no asking", cfg.Ask, cfg.AskTimeout, bt.Info().AskTimeout)
	}
}

// The built-in proxy's stdin stays open after its config (one line, with
// ask and its timeout): SetPolicy and Answer reach it as one control line
// each, in the order they were called, and Close ends the channel, after
// which they fail as closed.
func TestUnitTheSidecarsStdinCarriesControlLines(t *testing.T) {
	m := newMemEngine()
	e := fakeEngine(t, m.api)
	t.Cleanup(m.close)
	bt, err := e.Start(context.Background(), backend.StartSpec{Manifest: fakeManifest(t, RuntimeRunsc), Agent: "sh", Session: fakeSession, Answers: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	info := bt.Info()
	if !info.LivePolicy || !slices.Equal(info.Allow, []string{"example.test"}) || info.AskTimeout != 30*time.Second {
		t.Errorf("info = %+v, want a live policy with the manifest's allowlist and a 30 s ask timeout", info)
	}
	ctx := context.Background()
	if err := bt.SetPolicy(ctx, []string{"example.test", "github.com:443"}, nil, "editor 1"); err != nil {
		t.Fatal(err)
	}
	if err := bt.Answer(ctx, 7, true); err != nil {
		t.Fatal(err)
	}
	if err := bt.Answer(ctx, 8, false); err != nil {
		t.Fatal(err)
	}
	if err := bt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"op":"policy","allow":["example.test","github.com:443"],"client":"editor 1"}`,
		`{"op":"answer","id":7,"decision":"allow"}`,
		`{"op":"answer","id":8,"decision":"deny"}`,
		"EOF",
	}
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(m.controlLines(), want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := m.controlLines(); !slices.Equal(got, want) {
		t.Errorf("the sidecar read\n%q\nwant\n%q", got, want)
	}
	m.mu.Lock()
	cfg := m.sidecarCfg
	m.mu.Unlock()
	if !cfg.Ask || cfg.AskTimeout != "30s" {
		t.Errorf("config ask = %v, askTimeout = %q; want true, 30s", cfg.Ask, cfg.AskTimeout)
	}
	if err := bt.Answer(ctx, 9, true); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Answer after Close = %v, want ErrClosed", err)
	}
}
