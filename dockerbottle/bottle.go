package dockerbottle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/manifest"
)

// Bottle is a started bottle on a Docker engine.
type Bottle struct {
	engine  *Engine
	session string
	agent   *manifest.Agent
	bottle  *manifest.Bottle
	info    backend.Info

	// life outlives the start request: the sidecar's audit stream runs on it
	// until the bottle closes.
	life   context.Context
	cancel context.CancelFunc

	agentID   string
	sidecarID string
	answers   bool // the caller answers the proxy's questions (StartSpec.Answers)

	// label is LabelSession's value on the bottle's resources when it is
	// not the session: the pool id of a bottle taken from the warm pool.
	label string
	// warmEnv is what a cold start puts in the agent container's
	// configuration (manifest env, the client's env, BOTTLE_SESSION): a
	// bottle made ahead of time gets it on every exec instead.
	warmEnv map[string]string
	// waiting: the bottle is in the warm pool, its proxy waits for its
	// config (egress.Config.Wait).
	waiting bool

	// ctl is the built-in proxy's stdin after its config: the control
	// channel that SetPolicy and Answer write lines to, out of the agent's
	// reach. nil before the proxy started, after Close, and for a sidecar
	// of the manifest's own.
	ctlMu sync.Mutex
	ctl   net.Conn

	closeMu sync.Mutex
	closed  bool
}

var _ backend.Bottle = (*Bottle)(nil)

// Info describes the bottle.
func (bt *Bottle) Info() backend.Info { return bt.info }

func resolve(spec backend.StartSpec) (*manifest.Agent, *manifest.Bottle, error) {
	if spec.Manifest == nil {
		return nil, nil, fmt.Errorf("%w: no manifest", backend.ErrInvalid)
	}
	agent, b, err := spec.Manifest.Agent(spec.Agent)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", backend.ErrInvalid, err)
	}
	return agent, b, nil
}

// Plan is the preflight of Start: it reads the manifest and asks the engine
// for its runtimes, and makes nothing.
func (e *Engine) Plan(ctx context.Context, spec backend.StartSpec) (*backend.Plan, error) {
	agent, b, err := resolve(spec)
	if err != nil {
		return nil, err
	}
	runtime, err := e.chooseRuntime(ctx, b.Runtime)
	if err != nil {
		return nil, err
	}
	img := b.Image
	if img == "" {
		img = "build: " + filepath.Join(b.Build.Context, b.Build.Dockerfile)
	}
	prov, err := planProvisioning(agent, b, spec, fmt.Sprintf("SIDECAR:%d", proxyPort(b)))
	if err != nil {
		return nil, err
	}
	items := prov.items
	if spec.Cwd != "" {
		items = append([]backend.CopyItem{{What: "workspace", From: spec.Cwd, To: workspaceDir}}, items...)
	}
	return &backend.Plan{
		Agent:        agent.Name,
		Bottle:       b.Name,
		Runtime:      runtime,
		RuntimeLabel: RuntimeLabel(runtime),
		Image:        img,
		Networks:     []string{"internal (agent and sidecar, no route out)", "bottle-egress (shared by every bottle's sidecar, no agent on it, sidecars cannot reach each other)"},
		Allow:        slices.Clone(b.Egress.Allow),
		Command:      agentArgv(agent),
		CopyIn:       items,
		Engine:       e.name,
		Warm:         e.warmPlan(ctx, b),
	}, nil
}

// agentArgv is what an exec without argv runs: the agent's command with its
// prompt passed as its profile says.
func agentArgv(a *manifest.Agent) []string {
	return a.Argv(homeDir)
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// Close removes the bottle's containers, then its networks, then its
// workspace image. It finds them by the session label rather than by what
// Start recorded, so a start that failed half way is cleaned up the same.
// Every step runs even when one fails; the errors are joined.
func (bt *Bottle) Close(ctx context.Context) error {
	bt.closeMu.Lock()
	defer bt.closeMu.Unlock()
	bt.closed = true
	bt.closeControl()
	bt.cancel()
	return bt.engine.removeSession(ctx, cmp.Or(bt.label, bt.session))
}

// lost classifies an engine error of a call on the running bottle (an
// exec, a copy): it says ErrBottleGone only once the agent container is
// seen gone or stopped. The engine answers "not found" and "conflict" for
// many things besides a lost container (a path in it, an exec), and only
// the container's loss may fail a session.
func (bt *Bottle) lost(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && !errors.Is(err, ctx.Err()):
		// A call given up says nothing of the container or the engine.
		return fmt.Errorf("%w: %v", ctx.Err(), err)
	case ctx.Err() != nil:
		return err
	}
	if err = engineErr(err); errors.Is(err, backend.ErrEngineUnavailable) {
		return err
	}
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), inspectTimeout)
	defer cancel()
	c, ierr := bt.engine.cli.ContainerInspect(ictx, bt.agentID)
	switch {
	case cerrdefs.IsNotFound(ierr):
		return fmt.Errorf("%w: %v", backend.ErrBottleGone, err)
	case ierr != nil:
		if ierr = engineErr(ierr); errors.Is(ierr, backend.ErrEngineUnavailable) {
			return ierr
		}
		return err
	case c.ContainerJSONBase == nil || c.State == nil || !c.State.Running:
		return fmt.Errorf("%w: the agent container is not running: %v", backend.ErrBottleGone, err)
	}
	return err
}

// inspectTimeout bounds the look at the container that tells its loss
// from other failures.
const inspectTimeout = 10 * time.Second

func (bt *Bottle) isClosed() bool {
	bt.closeMu.Lock()
	defer bt.closeMu.Unlock()
	return bt.closed
}

func sessionFilter(session string) filters.Args {
	return filters.NewArgs(filters.Arg("label", LabelSession+"="+session))
}

func (e *Engine) removeSession(ctx context.Context, session string) error {
	f := sessionFilter(session)
	containers, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("listing the containers of bottle %s: %w", session, engineErr(err))
	}
	var fns []func() error
	for _, c := range containers {
		fns = append(fns, func() error { return e.removeContainer(ctx, c.ID) })
	}
	errs := []error{parallel(fns...)}
	nets, err := e.cli.NetworkList(ctx, network.ListOptions{Filters: f})
	errs = append(errs, engineErr(err))
	fns = fns[:0]
	for _, n := range nets {
		fns = append(fns, func() error { return e.removeNetwork(ctx, n.ID, n.Name) })
	}
	errs = append(errs, parallel(fns...))
	imgs, err := e.cli.ImageList(ctx, image.ListOptions{Filters: f})
	errs = append(errs, engineErr(err))
	for _, img := range imgs {
		errs = append(errs, e.removeImage(ctx, img.ID))
	}
	return errors.Join(errs...)
}

// removeContainer returns once the container is gone. When another removal
// of it is under way (the DNS guard's, say), it asks again until that one
// ended, so a bottle's Close never returns with a container still listed.
func (e *Engine) removeContainer(ctx context.Context, id string) error {
	for {
		err := e.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		switch {
		case err == nil || cerrdefs.IsNotFound(err):
			return nil
		case !isRemovalInProgress(err):
			return fmt.Errorf("removing container %.12s: %w", id, engineErr(err))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("removing container %.12s: waiting for a removal under way: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (e *Engine) removeNetwork(ctx context.Context, id, name string) error {
	err := e.cli.NetworkRemove(ctx, id)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("removing network %s: %w", name, engineErr(err))
	}
	return nil
}

func isRemovalInProgress(err error) bool {
	return cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress")
}

// parallel runs fns concurrently and joins their errors.
func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
