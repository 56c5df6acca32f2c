package dockerbottle

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/manifest"
)

// ProxyPort is where the built-in egress proxy listens.
const ProxyPort = egress.DefaultPort

// sidecarSpec is the container config of the egress sidecar. The built-in
// proxy gets its config on stdin, so nothing of it (the DLP secrets above
// all) shows in docker inspect; it runs as nobody on a read-only root.
func (e *Engine) sidecarSpec(b *manifest.Bottle, image, session string, internal bottleNetwork) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	cfg := &container.Config{
		Image:  image,
		Labels: e.owner.Labels(session, "sidecar"),
	}
	pids := int64(256)
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(internal.Name),
		// The sidecar needs the engine's DNS to resolve allowlisted names,
		// which gVisor cannot give it; it runs only our own code.
		Runtime:     RuntimeRunc,
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges:true"},
		Resources:   container.Resources{Memory: 256 << 20, PidsLimit: &pids},
	}
	if b.Sidecar == nil {
		// Stdin stays open after the config: it is the control channel.
		cfg.OpenStdin = true
		cfg.AttachStdin = true
		cfg.AttachStdout = true
		cfg.AttachStderr = true
		host.ReadonlyRootfs = true
	} else {
		cfg.Cmd = b.Sidecar.Args
	}
	net := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		internal.Name: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: sidecarAddr(internal).String()}},
	}}
	return cfg, host, net
}

func sidecarAddr(internal bottleNetwork) netip.Addr { return hostAddr(internal.Subnet, 2) }

func proxyPort(b *manifest.Bottle) int {
	if b.Sidecar != nil {
		return b.Sidecar.Port
	}
	return ProxyPort
}

// startSidecar starts the built-in proxy: attach first (stdin is the
// config, then control lines; stdout the audit stream), then start, then
// send the config as one line and wait until it listens, so the agent's
// first request finds it ready. Stdin stays open for SetPolicy and Answer.
func (bt *Bottle) startSidecar(ctx context.Context, onEgress func(egress.Record)) error {
	e, b := bt.engine, bt.bottle
	if b.Sidecar != nil {
		if b.Sidecar.Config != "" {
			f := []contextFile{{Name: strings.TrimPrefix(b.Sidecar.ConfigPath, "/"), Host: b.Sidecar.Config, Mode: 0o644}}
			if err := e.copyFiles(ctx, bt.sidecarID, "/", f); err != nil {
				return fmt.Errorf("copying the sidecar config: %w", err)
			}
		}
		if err := e.cli.ContainerStart(ctx, bt.sidecarID, container.StartOptions{}); err != nil {
			return fmt.Errorf("starting the egress sidecar: %w", engineErr(err))
		}
		return nil
	}
	hj, err := e.cli.ContainerAttach(bt.life, bt.sidecarID, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return fmt.Errorf("attaching to the egress sidecar: %w", engineErr(err))
	}
	ready, exited := make(chan struct{}), make(chan string, 1)
	go bt.readSidecar(hj.Reader, ready, exited, onEgress, hj.Close)
	if err := e.cli.ContainerStart(ctx, bt.sidecarID, container.StartOptions{}); err != nil {
		hj.Close()
		return fmt.Errorf("starting the egress sidecar: %w", engineErr(err))
	}
	cfg := bt.proxyConfig()
	if err := json.NewEncoder(hj.Conn).Encode(cfg); err != nil {
		hj.Close()
		return fmt.Errorf("sending the egress sidecar its config: %w", err)
	}
	bt.ctlMu.Lock()
	bt.ctl = hj.Conn
	bt.ctlMu.Unlock()
	select {
	case <-ready:
		return nil
	case last := <-exited:
		return fmt.Errorf("the egress sidecar stopped before listening: %s", last)
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return fmt.Errorf("the egress sidecar did not start listening within 30 s; see docker logs %s", bt.sidecarID)
	}
}

// readSidecar follows the sidecar's output until it exits or the bottle
// closes: stdout carries egress records, decoded and handed to onEgress
// (the session keeps them), and stderr its log. When the log ends before the
// proxy said it listens, its last line goes to exited: the proxy refused
// its config.
func (bt *Bottle) readSidecar(r io.Reader, ready chan struct{}, exited chan<- string, onEgress func(egress.Record), closeConn func()) {
	defer closeConn()
	stdoutR, stdoutW := io.Pipe()
	stderrR, stderrW := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(stdoutW, stderrW, r)
		stdoutW.CloseWithError(err)
		stderrW.CloseWithError(err)
	}()
	go func() {
		sc := bufio.NewScanner(stderrR)
		signalled := false
		last := "no output"
		for sc.Scan() {
			line := sc.Text()
			if !signalled && strings.Contains(line, egress.ListeningLine) {
				close(ready)
				signalled = true
			}
			if line != "" {
				last = line
			}
			bt.engine.log.Debug("egress sidecar", "session", bt.session, "line", line)
		}
		if !signalled {
			exited <- last
		}
	}()
	sc := bufio.NewScanner(stdoutR)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec egress.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			bt.engine.log.Warn("egress sidecar wrote a line that is not an audit record", "session", bt.session, "err", err)
			continue
		}
		if onEgress != nil {
			onEgress(rec)
		}
	}
}

// controlTimeout bounds one control line's write: the proxy reads its
// stdin all the time, so a write that blocks means it is gone.
const controlTimeout = 10 * time.Second

// SetPolicy replaces the built-in proxy's allowlist and blocklist with one
// control line; the proxy audits the change, naming client.
func (bt *Bottle) SetPolicy(ctx context.Context, allow, block []string, client string) error {
	return bt.control(ctx, egress.Control{Op: egress.OpPolicy, Allow: allow, Block: block, Client: client})
}

// Answer answers the proxy's question id.
func (bt *Bottle) Answer(ctx context.Context, id uint64, allow bool) error {
	d := egress.DecisionDeny
	if allow {
		d = egress.DecisionAllow
	}
	return bt.control(ctx, egress.Control{Op: egress.OpAnswer, ID: id, Decision: d})
}

// control writes one control line to the proxy's stdin. Writes are
// serialized, so a policy sent before an answer is applied before it.
func (bt *Bottle) control(ctx context.Context, c egress.Control) error {
	if bt.bottle.Sidecar != nil {
		return backend.ErrPolicyFixed
	}
	line, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding a control line for the egress proxy: %w", err)
	}
	line = append(line, '\n')
	bt.ctlMu.Lock()
	defer bt.ctlMu.Unlock()
	if bt.ctl == nil {
		return fmt.Errorf("egress proxy of bottle %s: %w", bt.session, backend.ErrClosed)
	}
	deadline := time.Now().Add(controlTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := bt.ctl.SetWriteDeadline(deadline); err != nil {
		return fmt.Errorf("egress proxy of bottle %s: %w", bt.session, err)
	}
	if _, err := bt.ctl.Write(line); err != nil {
		return fmt.Errorf("writing to the egress proxy of bottle %s: %w: %v", bt.session, backend.ErrBottleGone, err)
	}
	return nil
}

// closeControl ends the control channel: the proxy refuses the questions
// still pending and asks no more, and keeps its policy.
func (bt *Bottle) closeControl() {
	bt.ctlMu.Lock()
	defer bt.ctlMu.Unlock()
	if bt.ctl != nil {
		bt.ctl.Close()
		bt.ctl = nil
	}
}

// asks says whether the bottle's proxy holds connections to ask about
// them: the built-in proxy, a manifest that does not turn it off, and a
// caller that answers.
func (bt *Bottle) asks() bool {
	return bt.answers && bt.bottle.Sidecar == nil && bt.bottle.Egress.Ask
}

// askTimeout is how long the bottle's proxy holds a connection it asks
// about; 0 when it never asks.
func (bt *Bottle) askTimeout() time.Duration {
	if !bt.asks() {
		return 0
	}
	return cmp.Or(bt.bottle.Egress.AskTimeout, egress.DefaultAskTimeout)
}

// proxyConfig is the built-in proxy's config for the bottle: its allowlist,
// blocklist, trusted hosts and DLP, with the values of the variables the
// manifest marks secret. It goes to the proxy's stdin only.
func (bt *Bottle) proxyConfig() egress.Config {
	b := bt.bottle
	cfg := egress.Config{
		Listen:  ":" + strconv.Itoa(ProxyPort),
		Session: bt.session,
		Allow:   b.Egress.Allow,
		Block:   b.Egress.Block,
		Trusted: b.Egress.Trusted,
		Ask:     bt.asks(),
		Wait:    bt.waiting,
		DLP: egress.DLPConfig{
			NoBuiltin: b.Egress.DLP.NoBuiltin,
			Disable:   b.Egress.DLP.Disable,
			Patterns:  dlpPatterns(b.Egress.DLP.Patterns),
			Secrets:   bt.secrets(),
		},
	}
	if cfg.Ask {
		cfg.AskTimeout = bt.askTimeout().String()
	}
	return cfg
}

func dlpPatterns(ps []manifest.DLPPattern) []egress.Pattern {
	out := make([]egress.Pattern, len(ps))
	for i, p := range ps {
		out[i] = egress.Pattern(p)
	}
	return out
}

// minSecretLen is the proxy's shortest secret: shorter values would match
// ordinary text, so they are left out with a warning rather than refusing
// to start.
const minSecretLen = 8

// secrets reads the values of the bottle's secret_env variables from the
// host (or the env file), and of the secrets the agent's profile gives it
// (Claude Code's OAuth token), named as the agent sees them: those are
// meant for the agent's API over TLS, never for a URL or header the proxy
// sees. Values are never logged; names are.
func (bt *Bottle) secrets() []egress.Secret {
	b := bt.bottle
	var out []egress.Secret
	add := func(name, value string) {
		switch {
		case value == "":
			bt.engine.log.Warn("secret_env variable is not set; the proxy cannot watch for it", "session", bt.session, "variable", name)
		case len(value) < minSecretLen:
			bt.engine.log.Warn("secret_env value too short to tell from ordinary text; the proxy does not watch for it",
				"session", bt.session, "variable", name, "min", minSecretLen)
		default:
			out = append(out, egress.Secret{Name: name, Value: value})
		}
	}
	for _, name := range b.Egress.SecretEnv {
		v := bt.engine.getenv(name)
		if v == "" {
			v = b.EnvFileVars[name]
		}
		add(name, v)
	}
	for _, s := range bt.agent.Profile.Secrets {
		if v := bt.engine.getenv(s.Host); v != "" && !slices.Contains(b.Egress.SecretEnv, s.Host) {
			add(s.Agent, v)
		}
	}
	return out
}
