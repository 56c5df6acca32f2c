package dockerbottle_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/manifest"
)

// The live tests run against the real engine: each calls needEngine
// first, and a missing engine fails it, never skips it.
// scripts/setup.sh prepares the engine and the base image. The unit tests
// (a fake behind engineAPI) need no engine.

const baseImage = "bottle/base:bookworm"

var (
	engine  *dockerbottle.Engine
	workDir string
	env     = &fakeEnv{vars: map[string]string{}}

	engineOnce sync.Once
	engineErr  error
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var err error
	workDir, err = os.MkdirTemp("", "dockerbottle-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)
	// Every test process of this package on the machine holds this lock
	// shared while it runs; the last to end removes the test images, which
	// all of them use by the same tags.
	imagesLock, err := os.OpenFile(filepath.Join(os.TempDir(), "bottle-dockerbottle-test-images.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer imagesLock.Close()
	if err := syscall.Flock(int(imagesLock.Fd()), syscall.LOCK_SH); err != nil {
		fmt.Fprintln(os.Stderr, "locking the test images:", err)
		return 1
	}
	code := m.Run()
	if engine == nil {
		return code // no live test ran, or none reached the engine
	}
	defer engine.Close()
	ctx := context.Background()
	if err := engine.DrainPool(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if syscall.Flock(int(imagesLock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
		removeTestImages(ctx)
	}
	if left := leftovers(ctx); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the tests left resources on the engine:\n%s", strings.Join(left, "\n"))
		return 1
	}
	return code
}

// needEngine fails t unless the engine answers; the first call builds the
// sidecar's binary and connects.
func needEngine(t testing.TB) {
	t.Helper()
	engineOnce.Do(func() { engineErr = connectEngine() })
	if engineErr != nil {
		t.Fatalf("this test needs a Docker engine (run scripts/setup.sh): %v", engineErr)
	}
}

func connectEngine() error {
	proxy := filepath.Join(workDir, "bottle-rpc")
	if err := goBuild(proxy, "github.com/bottle-dev/bottle/cmd/bottle-rpc"); err != nil {
		return err
	}
	pool := 0
	if warmTests {
		pool = 1
	}
	e, err := dockerbottle.New(context.Background(), dockerbottle.Options{
		ProxyBinary: proxy,
		Pool:        pool,
		Getenv:      env.get,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	engine = e
	return nil
}

func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// leftovers lists what this test process's engine made and did not remove.
func leftovers(ctx context.Context) []string {
	res, err := engine.Resources(ctx)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, r := range res {
		if r.Owner == engine.Owner().ID {
			out = append(out, fmt.Sprintf("  %s %s (bottle %s)", r.Kind, r.Name, r.Session))
		}
	}
	return out
}

type fakeEnv struct {
	mu   sync.Mutex
	vars map[string]string
}

func (f *fakeEnv) get(k string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vars[k]
}

func (f *fakeEnv) set(t *testing.T, k, v string) {
	f.mu.Lock()
	f.vars[k] = v
	f.mu.Unlock()
	t.Cleanup(func() {
		f.mu.Lock()
		delete(f.vars, k)
		f.mu.Unlock()
	})
}

// parseManifest writes files into a temp folder and parses yaml there.
func parseManifest(t testing.TB, yaml string, files map[string]string) *manifest.Manifest {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := manifest.Parse(filepath.Join(dir, "bottle.yaml"), []byte(yaml), dir)
	if err != nil {
		t.Fatalf("test manifest: %v", err)
	}
	return m
}

// simpleManifest is one agent "sh" on the base image, with an allowlist.
func simpleManifest(t testing.TB, runtime string, allow ...string) *manifest.Manifest {
	t.Helper()
	return egressManifest(t, runtime, "allow: ["+strings.Join(allow, ", ")+"]", nil)
}

// warmTests (BOTTLE_TEST_WARM=1) makes startBottle start through the warm
// pool every bottle that may start warm, so that the lifecycle,
// provisioning, egress and escape tests run on bottles made ahead of time.
var warmTests = os.Getenv("BOTTLE_TEST_WARM") == "1"

// bottleLabels maps a warm bottle's session to the session label its
// resources carry: its pool id, given before the start named it.
var bottleLabels sync.Map

// bottleLabel is the session label of the bottle started as session.
func bottleLabel(session string) string {
	if l, ok := bottleLabels.Load(session); ok {
		return l.(string)
	}
	return session
}

// startBottle starts a bottle and closes it when the test ends.
func startBottle(t testing.TB, spec backend.StartSpec) *dockerbottle.Bottle {
	t.Helper()
	needEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	warm := warmTests && mayStartWarm(t, spec)
	if warm {
		readyWarm(t, ctx, spec)
	}
	b, err := engine.Start(ctx, spec, nil)
	if err != nil {
		t.Fatalf("starting bottle: %v", err)
	}
	bt := b.(*dockerbottle.Bottle)
	if warm && !bt.Info().Warm {
		bt.Close(context.Background())
		t.Fatal("BOTTLE_TEST_WARM: the start was cold with a bottle of its kind ready")
	}
	if bt.Info().Warm {
		c, err := engine.Client().ContainerInspect(ctx, bt.Info().ContainerID)
		if err != nil {
			bt.Close(context.Background())
			t.Fatalf("inspecting the warm bottle's agent: %v", err)
		}
		bottleLabels.Store(bt.Info().Session, c.Config.Labels[dockerbottle.LabelSession])
	}
	t.Cleanup(func() {
		if err := bt.Close(context.Background()); err != nil {
			t.Errorf("closing bottle: %v", err)
		}
	})
	return bt
}

// mayStartWarm says whether the pool makes bottles for spec's bottle.
func mayStartWarm(t testing.TB, spec backend.StartSpec) bool {
	_, b, err := spec.Manifest.Agent(spec.Agent)
	return err == nil && b.Sidecar == nil && (b.Pool == nil || *b.Pool > 0)
}

// readyWarm waits until a bottle of spec's kind waits in the pool; a kind
// whose images are not built yet is started cold once, which builds them
// and names the kind to the pool.
func readyWarm(t testing.TB, ctx context.Context, spec backend.StartSpec) {
	t.Helper()
	plan := func() bool {
		p, err := engine.Plan(ctx, spec)
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		return p.Warm
	}
	_, changed := engine.PoolReady()
	if plan() {
		return
	}
	if cold, err := engine.Start(ctx, spec, nil); err == nil {
		cold.Close(context.Background())
	}
	for !plan() {
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("BOTTLE_TEST_WARM: no bottle of this kind in the pool: %v", ctx.Err())
		}
		_, changed = engine.PoolReady()
	}
}

// run execs argv without a TTY and returns its output and exit code.
func run(t *testing.T, b backend.Bottle, argv ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := b.Exec(ctx, backend.ExecSpec{Argv: argv})
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	defer p.Close()
	p.CloseInput()
	out, err := io.ReadAll(p)
	if err != nil {
		t.Fatalf("reading output of %q: %v", argv, err)
	}
	code, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("waiting for %q: %v", argv, err)
	}
	return string(out), code
}

// mustRun is run that wants exit code 0.
func mustRun(t *testing.T, b backend.Bottle, argv ...string) string {
	t.Helper()
	out, code := run(t, b, argv...)
	if code != 0 {
		t.Fatalf("%q exited %d: %s", argv, code, out)
	}
	return out
}

func inspect(t *testing.T, id string) container.InspectResponse {
	t.Helper()
	c, err := engine.Client().ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatalf("inspecting %s: %v", id, err)
	}
	return c
}

// sessionResources lists what is left on the engine for a session.
func sessionResources(t *testing.T, session string) []string {
	t.Helper()
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", dockerbottle.LabelSession+"="+session))
	var out []string
	cs, err := engine.Client().ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		out = append(out, "container "+c.Names[0])
	}
	ns, err := engine.Client().NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		out = append(out, "network "+n.Name)
	}
	is, err := engine.Client().ImageList(ctx, image.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range is {
		out = append(out, "image "+i.ID)
	}
	return out
}

func assertNothingLeft(t *testing.T, session string) {
	t.Helper()
	if left := sessionResources(t, session); len(left) > 0 {
		t.Errorf("bottle %s left resources behind: %v", session, left)
	}
}

// auditLog collects the egress decisions of a bottle.
type auditLog struct {
	mu   sync.Mutex
	recs []egress.Record
}

func (a *auditLog) add(r egress.Record) {
	a.mu.Lock()
	a.recs = append(a.recs, r)
	a.mu.Unlock()
}

// waitFor returns the first record that matches, waiting a little: the
// audit line may arrive after the client saw the proxy's answer.
func (a *auditLog) waitFor(t *testing.T, match func(egress.Record) bool) egress.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		for _, r := range a.recs {
			if match(r) {
				a.mu.Unlock()
				return r
			}
		}
		a.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	t.Fatalf("no matching audit record; have %+v", a.recs)
	return egress.Record{}
}

var errTimeout = errors.New("timed out")

// readUntil reads r until the accumulated output contains want.
func readUntil(r io.Reader, want string, timeout time.Duration) (string, error) {
	var buf bytes.Buffer
	done := make(chan error, 1)
	go func() {
		chunk := make([]byte, 4096)
		for {
			n, err := r.Read(chunk)
			buf.Write(chunk[:n])
			if strings.Contains(buf.String(), want) {
				done <- nil
				return
			}
			if err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		return buf.String(), err
	case <-time.After(timeout):
		return "", errTimeout
	}
}
