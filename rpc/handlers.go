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

func (s *Server) plan(ctx context.Context, p *PlanParams) (*PlanResult, error) {
	spec, err := resolveSpec(p.Agent, p.Manifest, p.Cwd)
	if err != nil {
		return nil, err
	}
	plan, err := s.be.Plan(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", p.Agent, err)
	}
	return planResult(plan), nil
}

// agents lists a manifest's agents, so that an editor can offer them.
func (s *Server) agents(_ context.Context, p *AgentsParams) (*AgentsResult, error) {
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

func (s *Server) start(ctx context.Context, p *StartParams) (*StartResult, error) {
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

	pr := s.beginProgress(p.WorkDoneToken, "Starting bottle "+p.Agent)
	sess, err := s.reg.Start(ctx, spec, pr.step)
	pr.end(ctx, err)
	if err != nil {
		if ctx.Err() == nil {
			s.logMessage(MessageError, fmt.Sprintf("bottle/start %s failed: %v", p.Agent, err))
		}
		return nil, err
	}
	info := sess.Info()
	s.logMessage(MessageInfo, fmt.Sprintf("session %s: agent %s ready in container %s (%s)",
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
	s     *Server
	token ProgressToken
}

func (s *Server) beginProgress(token ProgressToken, title string) progress {
	if len(token) == 0 {
		return progress{}
	}
	pr := progress{s: s, token: token}
	pr.send(WorkDoneProgress{Kind: ProgressBegin, Title: title, Cancellable: true, Percentage: new(0)})
	return pr
}

func (pr progress) send(v WorkDoneProgress) {
	pr.s.notify(MethodProgress, ProgressParams{Token: pr.token, Value: v}, high)
}

// step is the backend.Progress of the start; nil without a token.
func (pr progress) step(st backend.Step) {
	if pr.s == nil {
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
	if pr.s == nil {
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
func (s *Server) exec(ctx context.Context, params json.RawMessage, reply func(any, error)) {
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
	sess, err := s.reg.Get(p.Session)
	if err != nil {
		reply(nil, err)
		return
	}
	_, err = sess.Exec(ctx, spec, func(e *session.Exec) { reply(ExecResult{Exec: e.ID()}, nil) })
	if err != nil {
		reply(nil, err)
	}
}

func (s *Server) cp(ctx context.Context, p *CpParams) (*CpResult, error) {
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
	sess, err := s.reg.Get(p.Session)
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
// a teardown stopped half way would leave resources behind.
func (s *Server) closeSession(ctx context.Context, p *CloseParams) (*struct{}, error) {
	if p.Session == "" {
		return nil, invalidParams("session", "give the session id from bottle/start", "session is required")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.TeardownTimeout)
	defer cancel()
	sess, err := s.reg.Get(p.Session)
	if err != nil {
		return nil, err
	}
	wasClosed := sess.State() == session.StateClosed
	if err := sess.Close(ctx); err != nil {
		s.logMessage(MessageError, fmt.Sprintf("session %s: teardown failed: %v", p.Session, err))
		return nil, rpcError(CodeInternalError, ErrorData{
			Kind: KindTeardownFailed,
			Hint: "retry bottle/close, or run 'bottle-rpc gc' to remove what was left behind",
		}, "%v", err)
	}
	if !wasClosed {
		s.logMessage(MessageInfo, fmt.Sprintf("session %s: closed", p.Session))
	}
	return &struct{}{}, nil
}

func (s *Server) list(context.Context, *ListParams) (*ListResult, error) {
	res := &ListResult{Sessions: []SessionInfo{}}
	for _, snap := range s.reg.List() {
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
		}
		if snap.Err != nil {
			si.Error = snap.Err.Error()
		}
		for _, e := range snap.Execs {
			ei := ExecInfo{Exec: e.ID, Argv: e.Argv, Tty: e.Tty, Running: e.Running, Sent: e.Sent, Acked: e.Acked}
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
		res.Sessions = append(res.Sessions, si)
	}
	return res, nil
}

// execOf looks up the exec a control message names.
func (s *Server) execOf(id string) (*session.Exec, error) {
	if id == "" {
		return nil, invalidParams("exec", "give the exec id from bottle/exec", "exec is required")
	}
	return s.reg.Exec(id)
}

func (s *Server) input(p *InputParams) error {
	e, err := s.execOf(p.Exec)
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

func (s *Server) resize(p *ResizeParams) error {
	e, err := s.execOf(p.Exec)
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

func (s *Server) ack(p *AckParams) error {
	e, err := s.execOf(p.Exec)
	if err != nil {
		return err
	}
	if p.Bytes < 0 {
		return invalidParams("bytes", "ack the number of output bytes consumed", "bytes must not be negative, got %d", p.Bytes)
	}
	e.Ack(p.Bytes)
	return nil
}

func (s *Server) kill(p *KillParams) error {
	e, err := s.execOf(p.Exec)
	if err != nil {
		return err
	}
	e.Kill()
	return nil
}
