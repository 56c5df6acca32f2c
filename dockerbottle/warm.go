package dockerbottle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/manifest"
)

// pooledBottle is a bottle made ahead of time: its networks, its sidecar
// running a proxy that refuses everything until it is configured, and its
// agent container running from the plain agent image (under runc, its DNS
// guard ran), with nothing of any user's in it.
type pooledBottle struct {
	bt        *Bottle
	id        string // LabelSession of its resources
	proxyAddr string
	// sink is where the sidecar's audit records go: nowhere until a start
	// takes the bottle.
	sink atomic.Pointer[func(egress.Record)]
}

func (pb *pooledBottle) record(r egress.Record) {
	if f := pb.sink.Load(); f != nil {
		(*f)(r)
	}
}

func (pb *pooledBottle) remove(e *Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), poolRemoveTimeout)
	defer cancel()
	if err := pb.bt.Close(ctx); err != nil {
		e.log.Warn("warm pool: removing a bottle made ahead of time", "pool", pb.id, "err", err)
	}
}

// makePooled makes a bottle of key k the way a start does, with a bottle
// and an agent of nobody's: no manifest env, no provisioning, an empty
// policy. pause runs before each step and holds it while a start talks
// to the engine.
func (e *Engine) makePooled(ctx context.Context, k poolKey, pause func(context.Context) error) (_ *pooledBottle, err error) {
	id := poolPrefix + k.hash() + "-" + randomID(3)
	agent := &manifest.Agent{Name: "pool", Profile: &manifest.Profile{}}
	b := &manifest.Bottle{Name: "pool", Image: k.image, Runtime: k.runtime, Memory: k.memory, Pids: k.pids}
	life, cancel := context.WithCancel(context.Background())
	s := &start{
		e: e, agent: agent, b: b, session: id,
		spec: backend.StartSpec{Session: id, ContainerName: "bottle-" + id},
		bt:   &Bottle{engine: e, session: id, agent: agent, bottle: b, life: life, cancel: cancel, waiting: true},
	}
	pb := &pooledBottle{bt: s.bt, id: id}
	defer func() {
		if err != nil {
			s.teardown(ctx)
		}
	}()
	s.runtime = k.runtime
	steps := []func(context.Context) error{
		s.prepare,
		func(ctx context.Context) error {
			// The key's sidecar, not whatever this binary's is by now.
			s.proxyImg, s.builtinImg = k.sidecar, k.sidecar
			return s.createContainers(ctx)
		},
		func(ctx context.Context) error {
			mk := making(ctx)
			return parallel(
				func() error { return s.bt.startSidecar(mk, pb.record) },
				func() error { return s.startAgent(mk, &provisioning{}) },
			)
		},
	}
	for _, step := range steps {
		if err := pause(ctx); err != nil {
			return nil, err
		}
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	pb.proxyAddr = s.proxyAddr
	return pb, nil
}

// warmKey is the pool key of a start of b now, and how many bottles it
// keeps. ok is false when b never starts warm, or its images are not built
// yet (a start builds them; the pool never does).
func (e *Engine) warmKey(ctx context.Context, b *manifest.Bottle) (k poolKey, n int, ok bool, err error) {
	if n = e.warm.size(b); n == 0 {
		return poolKey{}, 0, false, nil
	}
	var found bool
	err = parallel(
		func() (err error) {
			// Our own binary's, built once per binary like any start's.
			k.sidecar, err = e.sidecarImage(ctx)
			return err
		},
		func() (err error) {
			k.runtime, err = e.chooseRuntime(ctx, b.Runtime)
			return err
		},
		func() (err error) {
			k.source, k.ref, k.image, found, err = e.builtAgentImage(ctx, b)
			return err
		},
	)
	if err != nil || !found {
		return poolKey{}, 0, false, err
	}
	k.memory, k.pids = b.Memory, b.Pids
	return k, n, true, nil
}

// builtAgentImage is agentImage without the build: the image's source,
// reference and ID, when the engine has it.
func (e *Engine) builtAgentImage(ctx context.Context, b *manifest.Bottle) (source, ref, id string, found bool, err error) {
	if b.Image != "" {
		source, ref = "image "+b.Image, b.Image
	} else {
		source = "build " + b.Build.Context + " " + b.Build.Dockerfile
		files, err := buildContextFiles(b.Build.Context, b.Build.Dockerfile)
		if err != nil {
			return "", "", "", false, nil // the start says what is wrong
		}
		key, err := (&buildContext{Dockerfile: b.Build.Dockerfile, Args: b.Build.Args, Files: files}).key()
		if err != nil {
			return "", "", "", false, nil
		}
		ref = "bottle/" + b.Name + ":" + key
	}
	img, err := e.cli.ImageInspect(ctx, ref)
	switch {
	case cerrdefs.IsNotFound(err):
		return "", "", "", false, nil
	case err != nil:
		return "", "", "", false, fmt.Errorf("looking up image %s: %w", ref, engineErr(err))
	}
	return source, ref, img.ID, true, nil
}

// learn registers the key of a start of b that just ran cold (its images
// are built now), so that the next one is warm.
func (e *Engine) learn(b *manifest.Bottle) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k, n, ok, err := e.warmKey(ctx, b)
	if err != nil {
		e.log.Debug("warm pool: reading the key of a start", "err", err)
	}
	if ok {
		e.warm.want(k, n)
	}
}

// warmPlan registers the key of a preflight, so that the pool makes its
// bottle while the user reads the plan, and says whether a start now
// would be warm.
func (e *Engine) warmPlan(ctx context.Context, b *manifest.Bottle) bool {
	k, n, ok, err := e.warmKey(ctx, b)
	if err != nil || !ok {
		return false
	}
	e.warm.want(k, n)
	return e.warm.ready(k)
}

// warmClient names the warm start in the audit record of the proxy's
// configuration.
const warmClient = "warm-start"

// configureTimeout bounds the wait for the proxy's answer to its config.
const configureTimeout = 10 * time.Second

// startWarm starts a bottle from the warm pool: it takes a ready bottle of
// the start's key and provisions it while it runs. It returns nil, nil
// when no bottle is ready or taking one failed (the start then goes cold;
// the bottle taken is removed), ctx's error when ctx ended, and
// ErrNameTaken when the pinned name is taken.
func (e *Engine) startWarm(ctx context.Context, spec backend.StartSpec, agent *manifest.Agent, b *manifest.Bottle, session string, progress backend.Progress) (*Bottle, error) {
	k, n, ok, err := e.warmKey(ctx, b)
	if err != nil || !ok {
		return nil, ctx.Err()
	}
	e.warm.want(k, n)
	pb := e.warm.take(k)
	if pb == nil {
		return nil, ctx.Err()
	}
	bt, err := e.provisionWarm(ctx, spec, agent, b, session, pb, k, progress)
	if err == nil {
		return bt, nil
	}
	pb.remove(e)
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, backend.ErrNameTaken):
		return nil, err // a cold start would be refused the same
	}
	e.log.Warn("warm start failed; starting cold", "session", session, "pool", pb.id, "err", err)
	return nil, nil
}

// provisionWarm makes pb the start's bottle: the prompt, skills, SSH keys
// and config, .git and the workspace as one tar unpacked as the agent
// user in the running container (everything lands under the home, which
// the agent owns), the proxy's config pushed and acknowledged, the
// container renamed as a cold start would name it, and the environment a
// cold start puts in the container's configuration given to every exec.
func (e *Engine) provisionWarm(ctx context.Context, spec backend.StartSpec, agent *manifest.Agent, b *manifest.Bottle, session string, pb *pooledBottle, k poolKey, progress backend.Progress) (*Bottle, error) {
	report := func(st startStep) {
		if progress != nil {
			progress(backend.Step{Name: startSteps[st].name, Message: startSteps[st].message, Done: int(st), Total: int(numStartSteps)})
		}
	}
	for st := stepRuntime; st <= stepContainers; st++ {
		report(st)
	}
	prov, err := planProvisioning(agent, b, spec, pb.proxyAddr)
	if err != nil {
		return nil, err
	}
	files := prov.files
	if spec.Cwd != "" {
		ws, err := walkDir(spec.Cwd, rel(workspaceDir), func(rel string, _ bool) (skipWhat, error) {
			if rel == ".git" {
				return skipTree, nil
			}
			return keepEntry, nil
		})
		if err != nil {
			return nil, err
		}
		files = append(ws, files...)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	report(stepStart)
	old := pb.bt
	old.ctlMu.Lock()
	ctl := old.ctl
	old.ctl = nil
	old.ctlMu.Unlock()
	bt := &Bottle{
		engine: e, session: session, agent: agent, bottle: b, life: old.life, cancel: old.cancel, answers: spec.Answers,
		agentID: old.agentID, sidecarID: old.sidecarID, ctl: ctl, label: pb.id,
	}
	bt.warmEnv = map[string]string{}
	maps.Copy(bt.warmEnv, b.Env)
	maps.Copy(bt.warmEnv, agent.Env)
	maps.Copy(bt.warmEnv, spec.Env)
	bt.warmEnv["BOTTLE_SESSION"] = session
	var name string
	mk := making(ctx)
	err = parallel(
		func() error {
			if len(files) == 0 {
				return nil
			}
			return bt.untar(mk, "/", files)
		},
		func() error { return bt.configure(mk, pb, spec.OnEgress) },
		func() (err error) {
			name, err = e.names.nameAgent(mk, spec.ContainerName, agent.Name, func(ctx context.Context, name string) error {
				return e.cli.ContainerRename(ctx, bt.agentID, name)
			})
			if err != nil {
				return fmt.Errorf("renaming the pooled agent container: %w", err)
			}
			return nil
		},
	)
	if err != nil {
		// The pooled bottle's Close removes it all, by its pool id.
		pb.bt = bt
		return nil, err
	}
	report(stepReady)
	bt.info = backend.Info{
		Session:      session,
		Agent:        agent.Name,
		Container:    name,
		ContainerID:  bt.agentID,
		Runtime:      k.runtime,
		RuntimeLabel: RuntimeLabel(k.runtime),
		Image:        k.ref,
		Home:         homeDir,
		Workspace:    workspaceDir,
		ProxyAddr:    pb.proxyAddr,
		LivePolicy:   true,
		Allow:        append([]string(nil), b.Egress.Allow...),
		Block:        append([]string(nil), b.Egress.Block...),
		AskTimeout:   bt.askTimeout(),
		Warm:         true,
	}
	return bt, ctx.Err()
}

// configure pushes the bottle's proxy config (policy, DLP and secrets) to
// the waiting proxy and returns once the proxy audited it: from then on
// its records go to onEgress.
func (bt *Bottle) configure(ctx context.Context, pb *pooledBottle, onEgress func(egress.Record)) error {
	acked := make(chan bool, 1)
	var done atomic.Bool
	sink := func(r egress.Record) {
		if done.Load() {
			if onEgress != nil {
				onEgress(r)
			}
			return
		}
		if r.Event != egress.EventPolicy || r.Client != warmClient {
			return // nothing of the user's ran yet
		}
		ok := r.Decision == egress.DecisionAllow
		done.Store(ok)
		if ok && onEgress != nil {
			onEgress(r)
		}
		select {
		case acked <- ok:
		default:
		}
	}
	pb.sink.Store(&sink)
	cfg := bt.proxyConfig()
	if err := bt.control(ctx, egress.Control{Op: egress.OpConfigure, Config: &cfg, Client: warmClient}); err != nil {
		return err
	}
	timer := time.NewTimer(configureTimeout)
	defer timer.Stop()
	select {
	case ok := <-acked:
		if !ok {
			return errors.New("the pooled egress proxy refused its config")
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("the pooled egress proxy did not take its config within %s", configureTimeout)
	}
}

// onlyForward passes on the steps after the last one passed on: a warm
// start that fails half way goes cold without showing its steps twice.
func onlyForward(progress backend.Progress) backend.Progress {
	if progress == nil {
		return nil
	}
	var mu sync.Mutex
	last := -1
	return func(st backend.Step) {
		mu.Lock()
		defer mu.Unlock()
		if st.Done > last {
			last = st.Done
			progress(st)
		}
	}
}
