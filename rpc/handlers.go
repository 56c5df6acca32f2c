package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/manifest"
	"github.com/bottle-dev/bottle/session"
)

// Terminal size of a tty exec that gives none.
const (
	defaultCols = 80
	defaultRows = 24
)

func (c *conn) plan(ctx context.Context, p *PlanParams) (*PlanResult, error) {
	spec, err := resolveSpec(p.Agent, p.Manifest, p.Cwd)
	if err != nil {
		return nil, err
	}
	plan, err := c.be.Plan(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", p.Agent, err)
	}
	return planResult(plan), nil
}

// agents lists a manifest's agents, so that an editor can offer them.
func (c *conn) agents(_ context.Context, p *AgentsParams) (*AgentsResult, error) {
	if p.Cwd != "" && !filepath.IsAbs(p.Cwd) {
		return nil, invalidParams("cwd", "give an absolute host folder", "cwd %q is not an absolute path", p.Cwd)
	}
	m, err := loadManifest(p.Manifest, p.Cwd)
	if err != nil {
		return nil, err
	}
	res := &AgentsResult{Manifest: m.Path, Agents: []AgentInfo{}}
	for _, name := range m.AgentNames() {
		a, b, err := m.Agent(name)
		if err != nil {
			return nil, err
		}
		res.Agents = append(res.Agents, AgentInfo{Name: name, Bottle: b.Name, Command: slices.Concat(a.Command, a.Args), Allow: b.Egress.Allow})
	}
	return res, nil
}

func (c *conn) start(ctx context.Context, p *StartParams) (*StartResult, error) {
	spec, err := resolveSpec(p.Agent, p.Manifest, p.Cwd)
	if err != nil {
		return nil, err
	}
	if err := checkCopyGit(p.CopyGit, p.Cwd); err != nil {
		return nil, err
	}
	if err := checkEnv("env", p.Env); err != nil {
		return nil, err
	}
	if len(p.WorkDoneToken) > 0 && string(usableID(p.WorkDoneToken)) == "null" {
		return nil, invalidParams("workDoneToken", "give an integer or a string", "workDoneToken must be an integer or a string")
	}
	spec.CopyGit = p.CopyGit
	spec.ContainerName = p.ContainerName
	spec.Env = p.Env

	pr := c.beginProgress(p.WorkDoneToken, "Starting bottle "+p.Agent)
	sess, err := c.reg.Start(ctx, spec, pr.step, session.StartOptions{Watcher: c, Persist: p.Persist})
	pr.end(ctx, err)
	if err != nil {
		if ctx.Err() == nil {
			c.logMessage(MessageError, fmt.Sprintf("bottle/start %s failed: %v", p.Agent, err))
		}
		return nil, err
	}
	if !p.Persist {
		c.mu.Lock()
		c.owned[sess.ID()] = sess
		c.mu.Unlock()
	}
	info := sess.Info()
	c.logMessage(MessageInfo, fmt.Sprintf("session %s: agent %s ready in container %s (%s)",
		info.Session, info.Agent, info.Container, info.RuntimeLabel))
	return &StartResult{
		Session:      info.Session,
		Agent:        info.Agent,
		Container:    info.Container,
		ContainerID:  info.ContainerID,
		Runtime:      info.Runtime,
		RuntimeLabel: info.RuntimeLabel,
		Image:        info.Image,
		Home:         info.Home,
		Workspace:    info.Workspace,
		Warm:         info.Warm,
	}, nil
}

// checkCopyGit refuses copyGit without a .git folder in cwd, before
// anything is made.
func checkCopyGit(copyGit bool, cwd string) error {
	if !copyGit {
		return nil
	}
	if cwd == "" {
		return invalidParams("copyGit", "give cwd too: the .git folder comes from it", "copyGit needs cwd")
	}
	gitDir := filepath.Join(cwd, ".git")
	if fi, err := os.Stat(gitDir); err != nil || !fi.IsDir() {
		return invalidParams("copyGit", "start without copyGit, or from a folder that holds a git repository",
			"copyGit: %s is not a git folder", gitDir)
	}
	return nil
}

// resolveSpec checks the params shared by plan and start and loads the
// manifest.
func resolveSpec(agent, manifestPath, cwd string) (backend.StartSpec, error) {
	if agent == "" {
		return backend.StartSpec{}, invalidParams("agent", "name an agent of the manifest, like claude", "agent is required")
	}
	if cwd != "" {
		if !filepath.IsAbs(cwd) {
			return backend.StartSpec{}, invalidParams("cwd", "give an absolute host folder", "cwd %q is not an absolute path", cwd)
		}
		fi, err := os.Stat(cwd)
		if err != nil {
			return backend.StartSpec{}, invalidParams("cwd", "give an existing host folder", "cwd: %v", err)
		}
		if !fi.IsDir() {
			return backend.StartSpec{}, invalidParams("cwd", "give an existing host folder", "cwd %q is not a folder", cwd)
		}
	}
	m, err := loadManifest(manifestPath, cwd)
	if err != nil {
		return backend.StartSpec{}, err
	}
	if _, _, err := m.Agent(agent); err != nil {
		return backend.StartSpec{}, rpcError(CodeInvalidParams, ErrorData{
			Kind:   KindUnknownAgent,
			Hint:   "use one of the manifest's agents (listed), or add this one to it",
			Field:  "agent",
			Agents: m.AgentNames(),
		}, "%v", err)
	}
	return backend.StartSpec{Manifest: m, Agent: agent, Cwd: cwd}, nil
}

// loadManifest loads the manifest at p, relative to cwd when that is set;
// an empty p is the built-in manifest.
func loadManifest(p, cwd string) (*manifest.Manifest, error) {
	if p == "" {
		return manifest.Default(), nil
	}
	if !filepath.IsAbs(p) && cwd != "" {
		p = filepath.Join(cwd, p)
	}
	m, err := manifest.Load(p)
	if err == nil {
		return m, nil
	}
	if len(manifestProblems(err)) > 0 {
		return nil, err
	}
	hint := "check the manifest path (relative paths resolve against cwd) and that it can be read"
	if errors.Is(err, fs.ErrNotExist) {
		hint = "no file there: fix the manifest path, or leave it out for the built-in manifest"
	}
	return nil, rpcError(CodeManifestInvalid, ErrorData{Kind: KindManifestUnreadable, Field: "manifest", Hint: hint}, "%v", err)
}

// checkEnv rejects variable names a process environment cannot hold.
func checkEnv(field string, env map[string]string) error {
	for name := range env {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			return invalidParams(field, "use names without '=' or NUL", "%s: invalid variable name %q", field, name)
		}
	}
	return nil
}

// progress reports a start as LSP work-done progress; the zero value
// (no token) reports nothing.
type progress struct {
	c     *conn
	token ProgressToken
}

func (c *conn) beginProgress(token ProgressToken, title string) progress {
	if len(token) == 0 {
		return progress{}
	}
	pr := progress{c: c, token: token}
	pr.send(WorkDoneProgress{Kind: ProgressBegin, Title: title, Cancellable: true, Percentage: new(0)})
	return pr
}

func (pr progress) send(v WorkDoneProgress) {
	pr.c.notify(MethodProgress, ProgressParams{Token: pr.token, Value: v}, high)
}

// step is the backend.Progress of the start; nil without a token.
func (pr progress) step(st backend.Step) {
	if pr.c == nil {
		return
	}
	pct := 0
	if st.Total > 0 {
		pct = min(100, st.Done*100/st.Total)
	}
	msg := st.Message
	if msg == "" {
		msg = st.Name
	}
	pr.send(WorkDoneProgress{Kind: ProgressReport, Message: msg, Percentage: &pct, Step: st.Name})
}

// end closes the progress; it is queued before the start's reply.
func (pr progress) end(ctx context.Context, err error) {
	if pr.c == nil {
		return
	}
	msg := "ready"
	switch {
	case err != nil && ctx.Err() != nil:
		msg = "cancelled"
	case err != nil:
		msg = "failed: " + err.Error()
	}
	pr.send(WorkDoneProgress{Kind: ProgressEnd, Message: msg})
}

// exec replies with the exec id before the exec's output starts: the
// session calls ready before its pump runs.
func (c *conn) exec(ctx context.Context, params json.RawMessage, reply func(any, error)) {
	var p ExecParams
	if err := decodeParams(params, &p); err != nil {
		reply(nil, err)
		return
	}
	if p.Session == "" {
		reply(nil, invalidParams("session", "give the session id from bottle/start", "session is required"))
		return
	}
	if err := checkEnv("env", p.Env); err != nil {
		reply(nil, err)
		return
	}
	spec := backend.ExecSpec{Argv: p.Argv, Tty: p.Tty == nil || *p.Tty, Cols: p.Cols, Rows: p.Rows, Env: p.Env}
	if spec.Tty && spec.Cols == 0 {
		spec.Cols = defaultCols
	}
	if spec.Tty && spec.Rows == 0 {
		spec.Rows = defaultRows
	}
	sess, err := c.reg.Get(p.Session)
	if err != nil {
		reply(nil, err)
		return
	}
	_, err = sess.Exec(ctx, spec, func(e *session.Exec) {
		e.Subscribe(c, false) // a no-op when this connection is attached
		reply(ExecResult{Exec: e.ID()}, nil)
	})
	if err != nil {
		reply(nil, err)
	}
}

func (c *conn) cp(ctx context.Context, p *CpParams) (*CpResult, error) {
	if p.Session == "" {
		return nil, invalidParams("session", "give the session id from bottle/start", "session is required")
	}
	if p.HostPath == "" {
		return nil, invalidParams("hostPath", "give the host file or folder to copy", "hostPath is required")
	}
	if !filepath.IsAbs(p.HostPath) {
		return nil, invalidParams("hostPath", "give an absolute host path", "hostPath %q is not an absolute path", p.HostPath)
	}
	if _, err := os.Stat(p.HostPath); err != nil {
		return nil, invalidParams("hostPath", "give an existing host file or folder", "hostPath: %v", err)
	}
	if p.ContainerPath == "" {
		return nil, invalidParams("containerPath", "give an absolute path in the bottle", "containerPath is required")
	}
	if !path.IsAbs(p.ContainerPath) {
		return nil, invalidParams("containerPath", "give an absolute path in the bottle, like WORKSPACE/notes.md (the workspace is in bottle/start's result)",
			"containerPath %q is not an absolute path", p.ContainerPath)
	}
	target := path.Clean(p.ContainerPath)
	if target == "/" {
		return nil, invalidParams("containerPath", "name the file or folder the copy becomes, like WORKSPACE/notes.md",
			"containerPath must name a file or folder, not /")
	}
	sess, err := c.reg.Get(p.Session)
	if err != nil {
		return nil, err
	}
	n, err := sess.CopyIn(ctx, p.HostPath, target)
	if err != nil {
		return nil, err
	}
	return &CpResult{Bytes: n}, nil
}

// closeSession tears the session down even when the request is cancelled:
// a teardown stopped half way would leave resources behind. Its result
// counts the work the bottle took with it that bottle/fetch had not
// brought home.
func (c *conn) closeSession(ctx context.Context, p *CloseParams) (*CloseResult, error) {
	if p.Session == "" {
		return nil, invalidParams("session", "give the session id from bottle/start", "session is required")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.TeardownTimeout)
	defer cancel()
	sess, err := c.reg.Get(p.Session)
	if err != nil {
		return nil, err
	}
	wasClosed := sess.State() == session.StateClosed
	if err := sess.Close(ctx); err != nil {
		c.logMessage(MessageError, fmt.Sprintf("session %s: teardown failed: %v", p.Session, err))
		return nil, rpcError(CodeInternalError, ErrorData{
			Kind: KindTeardownFailed,
			Hint: "retry bottle/close, or run 'bottle-rpc gc' to remove what was left behind",
		}, "%v", err)
	}
	if !wasClosed {
		c.logMessage(MessageInfo, fmt.Sprintf("session %s: closed", p.Session))
	}
	res := &CloseResult{}
	if u := sess.Unfetched(); u != nil {
		res.Unfetched = &Unfetched{Commits: u.Commits, Files: u.Files}
	}
	return res, nil
}

func (c *conn) list(context.Context, *ListParams) (*ListResult, error) {
	res := &ListResult{Sessions: []SessionInfo{}}
	for _, snap := range c.reg.List(c) {
		res.Sessions = append(res.Sessions, sessionInfo(snap))
	}
	return res, nil
}

// sessionInfo describes a session on the wire.
func sessionInfo(snap session.Snapshot) SessionInfo {
	si := SessionInfo{
		Session:      snap.ID,
		Agent:        snap.Info.Agent,
		State:        string(snap.State),
		Container:    snap.Info.Container,
		Runtime:      snap.Info.Runtime,
		RuntimeLabel: snap.Info.RuntimeLabel,
		Image:        snap.Info.Image,
		Home:         snap.Info.Home,
		Workspace:    snap.Info.Workspace,
		Allow:        snap.Allow,
		Execs:        []ExecInfo{},
		Persist:      snap.Persist,
		Attached:     snap.Attached,
	}
	if snap.Err != nil {
		si.Error = snap.Err.Error()
	}
	for _, e := range snap.Execs {
		ei := ExecInfo{Exec: e.ID, Argv: e.Argv, Tty: e.Tty, Running: e.Running, Sent: e.Sent, Acked: e.Acked, Output: e.Output}
		if ei.Argv == nil {
			ei.Argv = []string{}
		}
		if !e.Running {
			ei.Code = new(e.Code)
		}
		if e.Err != nil {
			ei.Error = e.Err.Error()
		}
		si.Execs = append(si.Execs, ei)
	}
	return si
}

// attach answers before the replay starts: the session calls ready before
// it subscribes this connection to the execs.
func (c *conn) attach(_ context.Context, params json.RawMessage, reply func(any, error)) {
	var p AttachParams
	if err := decodeParams(params, &p); err != nil {
		reply(nil, err)
		return
	}
	if p.Session == "" {
		reply(nil, invalidParams("session", "give a session id from bottle/list", "session is required"))
		return
	}
	sess, err := c.reg.Get(p.Session)
	if err != nil {
		reply(nil, err)
		return
	}
	_, err = sess.Attach(c, func(snap session.Snapshot) { reply(AttachResult{Session: sessionInfo(snap)}, nil) })
	if err != nil {
		reply(nil, fmt.Errorf("attach: %w", err))
	}
}

func (c *conn) detach(_ context.Context, p *DetachParams) (*struct{}, error) {
	if p.Session == "" {
		return nil, invalidParams("session", "give a session id from bottle/list", "session is required")
	}
	sess, err := c.reg.Get(p.Session)
	if err != nil {
		return nil, err
	}
	sess.Detach(c)
	return &struct{}{}, nil
}

// execOf looks up the exec a control message names.
func (c *conn) execOf(id string) (*session.Exec, error) {
	if id == "" {
		return nil, invalidParams("exec", "give the exec id from bottle/exec", "exec is required")
	}
	return c.reg.Exec(id)
}

func (c *conn) input(p *InputParams) error {
	e, err := c.execOf(p.Exec)
	if err != nil {
		return err
	}
	if len(p.Data) > 0 {
		e.Input(p.Data)
	}
	if p.EOF {
		e.CloseInput()
	}
	return nil
}

func (c *conn) resize(p *ResizeParams) error {
	e, err := c.execOf(p.Exec)
	if err != nil {
		return err
	}
	if p.Cols == 0 {
		return invalidParams("cols", "give cols and rows of at least 1", "cols must be at least 1")
	}
	if p.Rows == 0 {
		return invalidParams("rows", "give cols and rows of at least 1", "rows must be at least 1")
	}
	e.Resize(p.Cols, p.Rows)
	return nil
}

func (c *conn) ack(p *AckParams) error {
	e, err := c.execOf(p.Exec)
	if err != nil {
		return err
	}
	if p.Bytes < 0 {
		return invalidParams("bytes", "ack the number of output bytes consumed", "bytes must not be negative, got %d", p.Bytes)
	}
	e.Ack(c, p.Bytes)
	return nil
}

func (c *conn) kill(p *KillParams) error {
	e, err := c.execOf(p.Exec)
	if err != nil {
		return err
	}
	e.Kill()
	return nil
}
