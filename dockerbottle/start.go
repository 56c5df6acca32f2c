package dockerbottle

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/manifest"
)

// startStep is a step of Start, in the order the steps begin.
type startStep int

const (
	stepRuntime startStep = iota
	stepImage
	stepNetworks
	stepContainers
	stepStart
	stepReady
	numStartSteps
)

// startSteps name each step and say it to people. The names are on the
// wire, as the step of bottle/start's $/progress reports (protocol.md).
var startSteps = [numStartSteps]struct{ name, message string }{
	stepRuntime:    {"runtime", "probing the container runtime"},
	stepImage:      {"image", "preparing images and networks"},
	stepNetworks:   {"networks", "networks ready"},
	stepContainers: {"containers", "creating the agent and sidecar containers"},
	stepStart:      {"start", "provisioning the agent and starting it and the egress proxy"},
	stepReady:      {"ready", "bottle ready"},
}

// start is one Start under way: its phases run in turn, and each keeps
// what it made here for the phases after it.
type start struct {
	e        *Engine
	spec     backend.StartSpec
	agent    *manifest.Agent
	b        *manifest.Bottle
	session  string
	progress backend.Progress
	// bt is the bottle being made; it records the containers' ids, so a
	// failure removes them with the rest.
	bt *Bottle

	runtime string
	// builtinImg is our own binary's image: the built-in proxy's, and the
	// DNS guard's under runc even when the bottle names its own sidecar.
	agentImg, proxyImg, builtinImg string
	internal, egress               bottleNetwork
	proxyAddr                      string
	agentName                      string
	guardID                        string
}

// Start makes a bottle: networks and containers are created concurrently,
// the agent is provisioned while the sidecar boots, and the agent starts
// last. A failure or cancellation at any point removes everything made.
func (e *Engine) Start(ctx context.Context, spec backend.StartSpec, progress backend.Progress) (_ backend.Bottle, err error) {
	agent, b, err := resolve(spec)
	if err != nil {
		return nil, err
	}
	session := spec.Session
	if session == "" {
		session = randomID(6)
	}
	defer e.warm.startBegins()()
	progress = onlyForward(progress)
	if bt, err := e.startWarm(ctx, spec, agent, b, session, progress); err != nil {
		return nil, err
	} else if bt != nil {
		return bt, nil
	}
	defer func() {
		if err == nil {
			go e.learn(b)
		}
	}()
	life, cancel := context.WithCancel(context.Background())
	s := &start{
		e: e, spec: spec, agent: agent, b: b, session: session, progress: progress,
		bt: &Bottle{engine: e, session: session, agent: agent, bottle: b, life: life, cancel: cancel, answers: spec.Answers},
	}
	defer func() {
		if err != nil {
			s.teardown(ctx)
		}
	}()
	phases := []struct {
		step startStep
		run  func(context.Context) error
	}{
		{stepRuntime, s.chooseRuntime},
		{stepImage, s.prepare},
		{stepNetworks, nil},
		{stepContainers, s.createContainers},
		{stepStart, s.boot},
		{stepReady, nil},
	}
	for _, ph := range phases {
		if err := s.begin(ctx, ph.step); err != nil {
			return nil, err
		}
		if ph.run == nil {
			continue
		}
		if err := ph.run(ctx); err != nil {
			return nil, err
		}
	}
	s.bt.info = s.info()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.bt, nil
}

// begin reports a step as it begins; a cancelled start goes no further.
func (s *start) begin(ctx context.Context, st startStep) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.progress != nil {
		s.progress(backend.Step{Name: startSteps[st].name, Message: startSteps[st].message, Done: int(st), Total: int(numStartSteps)})
	}
	return nil
}

// making is the context of Docker calls that create things: they are not
// cancelled half way, since a create the daemon completes after we gave up
// would be a resource nobody knows of. Cancellation takes effect between
// steps.
func making(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// teardown removes what a failed start made. It runs even when ctx is what
// failed.
func (s *start) teardown(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := s.bt.Close(cctx); err != nil {
		s.e.log.Error("teardown after a failed start", "session", s.session, "err", err)
	}
}

func (s *start) chooseRuntime(ctx context.Context) (err error) {
	s.runtime, err = s.e.chooseRuntime(ctx, s.b.Runtime)
	return err
}

// prepare makes the images and the bottle's internal network side by
// side, and finds the egress network that every sidecar shares (made by
// the first start that needs it).
func (s *start) prepare(ctx context.Context) error {
	mk := making(ctx)
	return parallel(
		func() error { return s.makeAgentImage(ctx) },
		func() error { return s.makeProxyImage(ctx) },
		func() (err error) {
			s.internal, err = s.e.createNetwork(mk, "bottle-"+s.session+"-internal", true, s.e.owner.Labels(s.session, "network-internal"))
			return err
		},
		func() (err error) {
			s.egress, err = s.e.sharedEgress(mk)
			return err
		},
	)
}

// makeAgentImage is the agent's image, with the working directory copied
// in when there is one.
func (s *start) makeAgentImage(ctx context.Context) error {
	img, err := s.e.agentImage(ctx, s.b)
	if err != nil {
		return err
	}
	if s.spec.Cwd != "" {
		img, err = s.e.workspaceImage(ctx, img, s.spec.Cwd, s.session)
	}
	s.agentImg = img
	return err
}

func (s *start) makeProxyImage(ctx context.Context) (err error) {
	if s.b.Sidecar == nil || s.runtime == RuntimeRunc {
		s.builtinImg, err = s.e.sidecarImage(ctx)
	}
	s.proxyImg = s.builtinImg
	if s.b.Sidecar != nil {
		s.proxyImg = s.b.Sidecar.Image
	}
	return err
}

// createContainers creates the sidecar, and the agent with its DNS guard,
// side by side; nothing runs yet.
func (s *start) createContainers(ctx context.Context) error {
	s.proxyAddr = fmt.Sprintf("%s:%d", sidecarAddr(s.internal), proxyPort(s.b))
	mk := making(ctx)
	return parallel(
		func() error { return s.createSidecar(mk) },
		func() error {
			if err := s.createAgent(mk); err != nil || s.runtime != RuntimeRunc {
				return err
			}
			var err error
			s.guardID, err = s.e.createDNSGuard(mk, s.session, s.bt.agentID, s.builtinImg) // see dnsguard.go
			if isNoSuchImage(err) {
				img, ierr := s.e.sidecarImage(mk)
				if ierr != nil {
					return ierr
				}
				s.guardID, err = s.e.createDNSGuard(mk, s.session, s.bt.agentID, img)
			}
			return err
		},
	)
}

// isNoSuchImage says whether a create failed for want of its image. The
// built-in sidecar's image can go between prepare's look and the create:
// a server running another bottle-rpc binary builds its own image and
// prunes the others (seen with servers of two builds at once on one
// engine). It is then made again and the create tried once more.
func isNoSuchImage(err error) bool {
	return cerrdefs.IsNotFound(err) && strings.Contains(err.Error(), "No such image")
}

func (s *start) createSidecar(ctx context.Context) error {
	e := s.e
	cfg, host, net := e.sidecarSpec(s.b, s.proxyImg, s.session, s.internal)
	name := "bottle-" + s.session + "-egress-proxy"
	resp, err := e.cli.ContainerCreate(ctx, cfg, host, net, nil, name)
	if isNoSuchImage(err) && s.b.Sidecar == nil {
		if cfg.Image, err = e.sidecarImage(ctx); err != nil {
			return err
		}
		resp, err = e.cli.ContainerCreate(ctx, cfg, host, net, nil, name)
	}
	if err != nil {
		return fmt.Errorf("creating the egress sidecar: %w", engineErr(err))
	}
	s.bt.sidecarID = resp.ID
	err = e.cli.NetworkConnect(ctx, s.egress.ID, resp.ID, nil)
	if cerrdefs.IsNotFound(err) {
		// A gc removed the shared network since prepare found it.
		if s.egress, err = e.sharedEgress(ctx); err == nil {
			err = e.cli.NetworkConnect(ctx, s.egress.ID, resp.ID, nil)
		}
	}
	if err != nil {
		return fmt.Errorf("connecting the egress sidecar to the shared egress network: %w", engineErr(err))
	}
	return nil
}

// createAgent creates the agent container on the internal network only.
// It gets the proxy by address: under gVisor the engine's DNS does not
// answer, and under runc the engine's DNS on internal networks can leak
// queries out (CVE-2024-29018), so DNS points nowhere.
func (s *start) createAgent(ctx context.Context) error {
	b, internal := s.b, s.internal
	proxyURL := "http://" + s.proxyAddr
	env := map[string]string{
		"HTTPS_PROXY": proxyURL, "https_proxy": proxyURL,
		"HTTP_PROXY": proxyURL, "http_proxy": proxyURL,
		"NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1",
		"BOTTLE_SESSION": s.session,
		"HOME":           homeDir,
	}
	maps.Copy(env, b.Env)
	maps.Copy(env, s.agent.Env)
	maps.Copy(env, s.spec.Env)
	init := true
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(internal.Name),
		Runtime:     s.runtime,
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges:true"},
		Init:        &init,
		DNS:         []string{"127.0.0.1"},
		Resources:   container.Resources{Memory: b.Memory},
	}
	if b.Pids > 0 {
		host.Resources.PidsLimit = &b.Pids
	}
	cfg := &container.Config{
		Image:      s.agentImg,
		User:       agentUser,
		WorkingDir: workspaceDir,
		Env:        envList(env),
		Entrypoint: []string{"sleep"},
		Cmd:        []string{"infinity"},
		Hostname:   "bottle",
		Labels:     s.e.owner.Labels(s.session, "agent"),
	}
	// A fixed address: left to IPAM, the agent, created side by side with
	// the sidecar, could take the sidecar's.
	net := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		internal.Name: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: hostAddr(internal.Subnet, 3).String()}},
	}}
	name, err := s.e.names.nameAgent(ctx, s.spec.ContainerName, s.agent.Name, func(ctx context.Context, name string) error {
		resp, err := s.e.cli.ContainerCreate(ctx, cfg, host, net, nil, name)
		if err == nil {
			s.bt.agentID = resp.ID
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("creating the agent container: %w", err)
	}
	s.agentName = name
	return nil
}

// boot provisions the agent and starts it, its DNS guard and the sidecar.
// The agent's first process runs only after Start returns, so the agent
// container and the sidecar can boot side by side.
func (s *start) boot(ctx context.Context) error {
	prov, err := planProvisioning(s.agent, s.b, s.spec, s.proxyAddr)
	if err != nil {
		return err
	}
	mk := making(ctx)
	return parallel(
		func() error { return s.bt.startSidecar(mk, s.spec.OnEgress) },
		func() error { return s.startAgent(mk, prov) },
	)
}

func (s *start) startAgent(ctx context.Context, prov *provisioning) error {
	e := s.e
	if len(prov.files) > 0 {
		if err := e.copyFiles(ctx, s.bt.agentID, "/", prov.files); err != nil {
			return err
		}
	}
	if err := e.cli.ContainerStart(ctx, s.bt.agentID, container.StartOptions{}); err != nil {
		return fmt.Errorf("starting the agent container: %w", engineErr(err))
	}
	if s.guardID != "" {
		return e.runDNSGuard(ctx, s.session, s.guardID)
	}
	return nil
}

func (s *start) info() backend.Info {
	return backend.Info{
		Session:      s.session,
		Agent:        s.agent.Name,
		Container:    s.agentName,
		ContainerID:  s.bt.agentID,
		Runtime:      s.runtime,
		RuntimeLabel: RuntimeLabel(s.runtime),
		Image:        s.agentImg,
		Home:         homeDir,
		Workspace:    workspaceDir,
		ProxyAddr:    s.proxyAddr,
		LivePolicy:   s.b.Sidecar == nil,
		Allow:        slices.Clone(s.b.Egress.Allow),
		Block:        slices.Clone(s.b.Egress.Block),
		AskTimeout:   s.bt.askTimeout(),
	}
}
