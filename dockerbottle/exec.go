package dockerbottle

import (
	"context"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/bottle-dev/bottle/backend"
)

// execEnv is what every exec gets besides the container's environment: the
// env file, pass-through host variables and the agent profile's secrets
// (Claude Code's OAuth token), read from the host at each exec. These may
// be secrets, so they go per exec, never into the container config.
func (bt *Bottle) execEnv(extra map[string]string) []string {
	env := maps.Clone(bt.warmEnv)
	if env == nil {
		env = map[string]string{}
	}
	for k, v := range bt.bottle.EnvFileVars {
		if _, set := bt.bottle.Env[k]; !set {
			env[k] = v
		}
	}
	for _, name := range bt.bottle.PassEnv {
		if v := bt.engine.getenv(name); v != "" {
			env[name] = v
		}
	}
	for _, s := range bt.agent.Profile.Secrets {
		if v := bt.engine.getenv(s.Host); v != "" {
			env[s.Agent] = v
		}
	}
	maps.Copy(env, extra)
	return envList(env)
}

// Exec runs a process in the bottle as the agent user.
func (bt *Bottle) Exec(ctx context.Context, spec backend.ExecSpec) (backend.Process, error) {
	if bt.isClosed() {
		return nil, fmt.Errorf("%w: bottle %s is closed", backend.ErrClosed, bt.session)
	}
	argv, extra := spec.Argv, spec.Env
	if len(argv) == 0 {
		argv = agentArgv(bt.agent)
		// A prompt passed in a variable is the agent's own; the client's
		// env still wins.
		if pe := bt.agent.PromptEnv(); pe != nil {
			maps.Copy(pe, spec.Env)
			extra = pe
		}
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("%w: agent %s has no command; give argv", backend.ErrInvalid, bt.agent.Name)
	}
	// The engine's resize right after the start is sometimes lost
	// (moby#35407; this engine answers "cannot resize a stopped
	// container" now and then), and a full-screen agent would draw its
	// first screen at 0x0. So the wrapper sets the size too, but only
	// one nobody set yet: a resize the client sent meanwhile stands.
	prelude := ""
	if spec.Tty && spec.Cols > 0 && spec.Rows > 0 {
		prelude = fmt.Sprintf(`[ "$(stty size 2>/dev/null)" != "0 0" ] || stty rows %d cols %d 2>/dev/null; `, spec.Rows, spec.Cols)
	}
	p, err := bt.startExec(ctx, argv, bt.execEnv(extra), spec.Tty, prelude)
	if err != nil {
		return nil, err
	}
	e := bt.engine
	if !spec.Tty {
		// Without a TTY the engine multiplexes stdout and stderr; a
		// Process has one output stream.
		p.out = demux(p.hj.Reader)
	}
	// The engine of API 1.41 cannot size an exec at creation, so it is
	// sized at once (for images without stty); a process that already
	// ended cannot be, and its output is still worth reading.
	if spec.Tty && spec.Cols > 0 && spec.Rows > 0 {
		if err := p.Resize(ctx, spec.Cols, spec.Rows); err != nil {
			e.log.Debug("sizing a new exec", "session", bt.session, "err", err)
		}
	}
	return p, nil
}

// startExec creates and attaches an exec of argv as the agent user in the
// workspace, with env; prelude is shell run before argv. The engine
// cannot signal an exec, and the pid it reports lives in another pid
// namespace; a wrapper records the in-container pid so that Kill can end
// the process group from inside. The process's output is the engine's
// stream as it comes: multiplexed unless tty.
func (bt *Bottle) startExec(ctx context.Context, argv, env []string, tty bool, prelude string) (*process, error) {
	e := bt.engine
	pidFile := "/tmp/.bottle-exec-" + randomID(6) + ".pid"
	script := prelude + `echo $$ >"$0" && exec "$@"`
	wrapped := append([]string{"/bin/sh", "-c", script, pidFile}, argv...)
	created, err := e.cli.ContainerExecCreate(ctx, bt.agentID, container.ExecOptions{
		User:         agentUser,
		Tty:          tty,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		Env:          env,
		WorkingDir:   workspaceDir,
		Cmd:          wrapped,
	})
	if err != nil {
		return nil, fmt.Errorf("creating exec %q: %w", argv[0], bt.lost(ctx, err))
	}
	hj, err := e.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{Tty: tty})
	if err != nil {
		return nil, fmt.Errorf("starting exec %q: %w", argv[0], bt.lost(ctx, err))
	}
	return &process{bottle: bt, id: created.ID, argv: argv, pidFile: pidFile, hj: hj, out: hj.Reader}, nil
}

type process struct {
	bottle  *Bottle
	id      string
	argv    []string
	pidFile string
	hj      types.HijackedResponse
	out     io.Reader
}

func (p *process) Argv() []string { return p.argv }

// Kill ends the exec's process and everything it started: its process
// group when it leads one (a TTY exec does), and its tree of children
// either way (an exec without a TTY shares a group with others).
func (p *process) Kill(ctx context.Context) error {
	// The tree is stopped from the top down before anything is killed: a
	// shell that saw its children die first would exit 0 on its own, and
	// a stopped process can start no more.
	script := `pid=$(cat "$0" 2>/dev/null) || exit 0
all=
stop() { kill -STOP "$1" 2>/dev/null; all="$all $1"; for c in $(pgrep -P "$1" 2>/dev/null); do stop "$c"; done; }
stop "$pid"; kill -KILL -- "-$pid" 2>/dev/null; kill -KILL $all 2>/dev/null; rm -f "$0"`
	e := p.bottle.engine
	x, err := e.cli.ContainerExecCreate(ctx, p.bottle.agentID, container.ExecOptions{User: agentUser, Cmd: []string{"/bin/sh", "-c", script, p.pidFile}})
	if err != nil {
		return fmt.Errorf("killing exec: %w", engineErr(err))
	}
	if err := e.cli.ContainerExecStart(ctx, x.ID, container.ExecStartOptions{}); err != nil {
		return fmt.Errorf("killing exec: %w", engineErr(err))
	}
	return nil
}

func (p *process) Read(b []byte) (int, error)  { return p.out.Read(b) }
func (p *process) Write(b []byte) (int, error) { return p.hj.Conn.Write(b) }
func (p *process) CloseInput() error           { return p.hj.CloseWrite() }
func (p *process) Close() error                { p.hj.Close(); return nil }

func (p *process) Resize(ctx context.Context, cols, rows uint) error {
	err := p.bottle.engine.cli.ContainerExecResize(ctx, p.id, container.ResizeOptions{Width: cols, Height: rows})
	if err != nil {
		return fmt.Errorf("resizing exec: %w", engineErr(err))
	}
	return nil
}

// Wait polls the exec until the engine reports it ended: the output stream
// closes a moment before the engine records the exit code.
func (p *process) Wait(ctx context.Context) (int, error) {
	delay := 5 * time.Millisecond
	for {
		st, err := p.bottle.engine.cli.ContainerExecInspect(ctx, p.id)
		if err != nil {
			return -1, fmt.Errorf("reading the exit code of exec: %w", p.bottle.lost(ctx, err))
		}
		if !st.Running {
			return st.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// demux merges the stdout and stderr that the engine multiplexes on the
// stream of a process without a TTY.
func demux(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, r)
		pw.CloseWithError(err)
	}()
	return pr
}
